import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    // Tests start real PostgreSQL clusters and servers: give them room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // 2 cores: two test files at a time keeps clusters from starving each other.
    maxWorkers: 2,
  },
});
