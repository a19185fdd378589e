import S3rver from 's3rver';
const s = new S3rver({ port: 45999, address: '127.0.0.1', silent: true, directory: '/tmp/s3child', configureBuckets: [{ name: 'b', configs: [] }] });
await s.run(); console.log('up');
