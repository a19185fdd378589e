import { startS3Server } from '@pgharbor/sandbox';
import { createS3Storage } from '../packages/storage-s3/dist/s3-storage.js';
import { Readable } from 'node:stream';
const url = process.argv[2];
let server, endpoint;
if (!url) { server = await startS3Server({ buckets: ['b'] }); endpoint = server.endpoint; process.env.K = server.accessKeyId; } else { endpoint = url; process.env.K = 'S3RVER'; }
const MiB = 1 << 20;
for (const uc of [1, 2, 4]) {
  const d = createS3Storage({ bucket: 'b', endpoint, force_path_style: true, access_key_id: { from_env: 'K' }, secret_access_key: { from_env: 'K' }, part_size: '5MiB', upload_concurrency: uc }, { logger: console, configDir: '/' });
  gc(); const base = process.memoryUsage().arrayBuffers; let peak = base; let n = 0;
  const src = new Readable({ read() { if (n++ === 64) return this.push(null); if (true) { gc(); peak = Math.max(peak, process.memoryUsage().arrayBuffers); } this.push(Buffer.alloc(MiB, n)); } });
  const t = Date.now();
  await d.put('big', src);
  const ms = Date.now() - t;
  console.log(`uc=${uc} ${url ? 'server in child' : 'server in-process'} peak growth ${((peak - base) / MiB).toFixed(1)} MiB, ${(64 / (ms / 1000)).toFixed(0)} MB/s`);
  await d.close();
}
await server?.destroy();
