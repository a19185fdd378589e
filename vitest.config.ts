import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    // Tests start real PostgreSQL clusters and servers: give them room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The sandbox S3 server (s3rver) makes ListObjectsV2 continuation tokens
    // with DES, which OpenSSL 3 only offers through its legacy provider.
    execArgv: ['--openssl-legacy-provider'],
    // 2 cores: two test files at a time keeps clusters from starving each other.
    maxWorkers: 2,
  },
});
