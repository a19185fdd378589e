import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harbor, silentLogger, type StorageDriver } from '@pgharbor/core';
import { describeStorageConformance } from '@pgharbor/core/testing';
import { createWorkspace, pgbenchChecksums, scratchDir, type Workspace } from './harness.js';

/**
 * The storage plugin a user would write (examples/storage/gzip-store.mjs,
 * walked through in docs/writing-a-storage-plugin.md): loaded from a config
 * file by relative path, exactly as pgharbor loads it, then held to the
 * conformance suite every driver passes, then used for a real backup and
 * restore. Nothing in pgharbor knows about it.
 */
const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/storage/gzip-store.mjs');

const scratch = await scratchDir('pgharbor-example-store-');
const configFile = path.join(scratch, 'pgharbor.config.yaml');
await writeFile(
  configFile,
  [
    'plugins:',
    `  - ${relativeTo(scratch, example)}`,
    'servers:',
    '  pg:',
    '    conninfo: "host=/nonexistent dbname=postgres"',
    '    repositories:',
    '      - { type: gzip, path: ./store, level: 1 }',
    '',
  ].join('\n'),
);
const harbor = await Harbor.load({ configFile, logger: silentLogger });
afterAll(async () => {
  await harbor.close();
  await rm(scratch, { recursive: true, force: true });
});

let stores = 0;
describeStorageConformance('examples/storage/gzip-store.mjs, loaded from a config file', {
  create: async () => harbor.storage.get('gzip').create({ path: path.join(scratch, `store-${++stores}`), level: 1 }, { logger: silentLogger, configDir: scratch }),
  destroy: async (driver: StorageDriver) => rm((driver as StorageDriver & { root: string }).root, { recursive: true, force: true }),
  reopen: async (driver: StorageDriver) =>
    harbor.storage.get('gzip').create({ path: (driver as StorageDriver & { root: string }).root, level: 1 }, { logger: silentLogger, configDir: scratch }),
});

describe('a backup and restore through the example gzip store', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace();
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(
      ws.configFile,
      `plugins:\n  - ${relativeTo(ws.dir, example)}\n` + config.replace('{ type: posix, path: ./repo }', '{ type: gzip, path: ./repo-gz }'),
    );
    await ws.cluster.pgbench(['-i', '-s', '2', '-q', 'postgres']);
  });
  afterAll(async () => ws?.cleanup());

  it('validates the repository options with the plugin\'s schema', async () => {
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, config.replace('path: ./repo-gz }', 'path: ./repo-gz, levle: 3 }'));
    try {
      const result = await ws.run(['list-backups', 'pg']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(/servers\.pg\.repositories\[0\]\.levle is not a known setting/);
      expect(result.stderr).toMatch(/allowed here: level, path/);
    } finally {
      await writeFile(ws.configFile, config);
    }
  });

  it('backs up, restores, starts, and the data is identical', async () => {
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    const manifest = JSON.parse(backup.stdout);
    expect(manifest.status).toBe('DONE');

    // What landed on disk is gzip, readable with zcat.
    const stored = path.join(ws.dir, 'repo-gz', 'pg', 'backups', manifest.id);
    expect((await readdir(stored)).sort()).toEqual(expect.arrayContaining(['bundle-000001.dat.gz', 'manifest.json.gz']));
    expect(JSON.parse(gunzipSync(await readFile(path.join(stored, 'manifest.json.gz'))).toString()).id).toBe(manifest.id);

    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(await pgbenchChecksums(ws.cluster));
  });
});

function relativeTo(dir: string, file: string): string {
  const relative = path.relative(dir, file);
  return relative.startsWith('.') ? relative : `./${relative}`;
}
