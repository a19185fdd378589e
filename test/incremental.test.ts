import { appendFile, cp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_ENTRY, blockMapDigest, decodeBlockMap, encodeBlockMap, type BackupManifest, type ManifestFile } from '@pgharbor/core';
import { createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';
import { readManifest, withRepository } from './repository-access.js';

interface BackupJson {
  id: string;
  type: string;
  parent?: string;
  size: number;
  storedSize: number;
  reusedSize?: number;
}

async function backup(ws: Workspace, type: string): Promise<BackupJson> {
  const result = await ws.run(['--json', 'backup', 'pg', '--type', type]);
  expect(result.stderr + result.stdout).not.toMatch(/^$/);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as BackupJson;
}

/** Checksums of the pgbench tables plus the tables the scenario adds and drops. */
async function contents(cluster: Workspace['cluster']): Promise<Record<string, string>> {
  const out = await pgbenchChecksums(cluster);
  const tables = await cluster.query("SELECT string_agg(tablename, ',' ORDER BY tablename) AS t FROM pg_tables WHERE schemaname = 'public'");
  out.tables = String(tables[0].t);
  for (const extra of ['scratch', 'fresh']) {
    if (out.tables.split(',').includes(extra)) out[extra] = await cluster.tableChecksum('postgres', extra, 'id');
  }
  return out;
}

async function restoreAndCompare(ws: Workspace, id: string, expected: Record<string, string>): Promise<void> {
  const target = await ws.restoreTarget();
  const restored = await ws.run(['restore', 'pg', id, target]);
  expect(restored.exitCode, restored.stderr).toBe(0);
  const cluster = await ws.startRestored(target);
  expect(await contents(cluster)).toEqual(expected);
  await cluster.stop();
}

/**
 * full → incr → incr → diff with block maps, against a real cluster: each
 * restores to exactly what the source held at its backup, and an incr
 * after a 1% update stores a small fraction of a full.
 */
describe.each([
  // Restored: which backups of the chain (full, incr, incr, diff), to keep the file's time lean.
  ['plain', '', [0, 1, 2, 3]],
  ['lz4', ', compression: lz4', [2]],
  ['zstd + encryption', ', compression: zstd, encryption: { passphrase: { from_file: ./passphrase } }', [2, 3]],
])('incremental chain (%s)', (name, repoOptions, restored) => {
  let ws: Workspace;
  const states: { backup: BackupJson; data: Record<string, string> }[] = [];

  beforeAll(async () => {
    ws = await createWorkspace();
    await writeFile(path.join(ws.dir, 'passphrase'), 'incremental chain test passphrase\n', { mode: 0o600 });
    await writeFile(ws.configFile, (await readFile(ws.configFile, 'utf8')).replace('- { type: posix, path: ./repo }', `- { type: posix, path: ./repo${repoOptions} }`));
    await ws.cluster.pgbench(['-i', '-s', '3', '-q', 'postgres']);
    await ws.cluster.query('CREATE TABLE scratch AS SELECT generate_series(1, 20000) AS id, md5(random()::text) AS v');
    await ws.cluster.query('CREATE TABLE doomed AS SELECT generate_series(1, 20000) AS id');
    const full = await backup(ws, 'full');
    states.push({ backup: full, data: await contents(ws.cluster) });

    await ws.cluster.pgbench(['-t', '500', '-c', '2', 'postgres']);
    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 3000'); // 1% of the rows, 1% of the pages
    await ws.cluster.query('TRUNCATE scratch');
    await ws.cluster.query('DROP TABLE doomed');
    await ws.cluster.query('CREATE TABLE fresh AS SELECT generate_series(1, 5000) AS id');
    const incr1 = await backup(ws, 'incr');
    states.push({ backup: incr1, data: await contents(ws.cluster) });

    await ws.cluster.query('INSERT INTO scratch SELECT generate_series(1, 3000), md5(random()::text)');
    await ws.cluster.query('UPDATE pgbench_branches SET bbalance = bbalance + 3');
    const incr2 = await backup(ws, 'incr');
    states.push({ backup: incr2, data: await contents(ws.cluster) });

    await ws.cluster.query('DELETE FROM fresh WHERE id > 2500');
    await ws.cluster.query('VACUUM fresh');
    const diff = await backup(ws, 'diff');
    states.push({ backup: diff, data: await contents(ws.cluster) });
  });
  afterAll(async () => ws?.cleanup());

  it('records type and parent, and an incr stores a fraction of a full', () => {
    const [full, incr1, incr2, diff] = states.map((s) => s.backup);
    expect(full).toMatchObject({ type: 'full' });
    expect(full.parent).toBeUndefined();
    expect(incr1).toMatchObject({ type: 'incr', parent: full.id });
    expect(incr2).toMatchObject({ type: 'incr', parent: incr1.id });
    expect(diff).toMatchObject({ type: 'diff', parent: full.id });
    // incr1: pgbench's 1,000 random updates touch a fifth of pgbench_accounts' pages at this scale; incr2 only small tables.
    expect(incr1.storedSize / full.storedSize).toBeLessThan(0.5);
    expect(incr2.storedSize / full.storedSize).toBeLessThan(0.2);
    expect(incr1.reusedSize).toBeGreaterThan(0);
  });

  it('restores backups of the chain to the data each was taken from', async () => {
    for (const index of restored as number[]) await restoreAndCompare(ws, states[index].backup.id, states[index].data);
  });

  it.runIf(name === 'zstd + encryption')('encrypted: maps and super blocks are bound to their backup (a bundle of another backup in place of one is refused before anything is written)', async () => {
    const [, incr1, incr2] = states.map((s) => s.backup);
    const bundle = (id: string) => path.join(ws.repoDir, 'pg', 'backups', id, 'bundle-000001.dat');
    const original = await readFile(bundle(incr2.id));
    await cp(bundle(incr1.id), bundle(incr2.id));
    try {
      const target = await ws.restoreTarget();
      const result = await ws.run(['restore', 'pg', incr2.id, target]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/block map of .* cannot be read: .*(bad header|failed authentication)|moved there from another/);
      expect(await readdir(target)).toEqual([]);
    } finally {
      await writeFile(bundle(incr2.id), original);
    }
  });

  it.runIf(name === 'plain')('delta-restores the last incr onto a restore of the full: only changed blocks are written', async () => {
    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', states[0].backup.id, target])).exitCode).toBe(0);
    const result = await ws.run(['--json', 'restore', 'pg', states[2].backup.id, target, '--delta']);
    expect(result.exitCode, result.stderr).toBe(0);
    const delta = (JSON.parse(result.stdout) as { delta: { keptBytes: number } }).delta;
    expect(delta.keptBytes).toBeGreaterThan(states[2].backup.size / 4);
    const cluster = await ws.startRestored(target);
    expect(await contents(cluster)).toEqual(states[2].data);
    await cluster.stop();
  });
});

/**
 * A repository written by someone else: block maps truncated, swapped or
 * pointing outside their super block or chain, chains with a missing,
 * failed, skipped or circular link. Each restore is refused with a message
 * naming what is wrong, and (refused before writing) the target stays empty.
 */
describe('incremental chain: hostile repository', () => {
  let ws: Workspace;
  let pristine: string;
  let full: BackupJson;
  let incr1: BackupJson;
  let incr2: BackupJson;

  beforeAll(async () => {
    ws = await createWorkspace();
    // Stored as they are, so that maps can be read and forged here.
    await writeFile(ws.configFile, (await readFile(ws.configFile, 'utf8')).replace('- { type: posix, path: ./repo }', '- { type: posix, path: ./repo, compression: none }'));
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    full = await backup(ws, 'full');
    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 50 = 0');
    incr1 = await backup(ws, 'incr');
    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 70 = 0');
    await ws.cluster.query('UPDATE pgbench_tellers SET tbalance = tbalance + 1');
    incr2 = await backup(ws, 'incr');
    pristine = path.join(ws.dir, 'pristine-repo');
    await cp(ws.repoDir, pristine, { recursive: true });
  });
  afterAll(async () => ws?.cleanup());

  const bundlePath = (id: string, bundle: number) => path.join(ws.repoDir, 'pg', 'backups', id, `bundle-${String(bundle).padStart(6, '0')}.dat`);
  const rewrite = (manifest: BackupManifest) => withRepository(ws.configFile, (repository) => repository.writeManifest(manifest));
  /** The biggest block-mapped file stored by `manifest` itself (not a reference). */
  const ownMapped = (manifest: BackupManifest): ManifestFile =>
    manifest.files.filter((f) => f.blockMap && !f.reference).sort((a, b) => b.size - a.size)[0];
  const mapBytes = async (id: string, file: ManifestFile): Promise<Buffer> => {
    const bytes = await readFile(bundlePath(file.reference ?? id, file.bundle!));
    return bytes.subarray(file.blockMap!.offset, file.blockMap!.offset + file.blockMap!.storedSize);
  };
  /** Replace a file's map by `bytes`, appended to its bundle, the manifest pointing at it with the right sha256. */
  const plantMap = async (manifest: BackupManifest, file: ManifestFile, bytes: Buffer) => {
    const bundle = bundlePath(manifest.id, file.bundle!);
    const at = (await stat(bundle)).size;
    await appendFile(bundle, bytes);
    file.blockMap = { offset: at, storedSize: bytes.length, size: bytes.length, sha256: blockMapDigest(bytes) };
    file.storedSize = at + bytes.length - file.offset!;
    await rewrite(manifest);
  };

  async function refused(id: string, message: RegExp, nothingWritten = true): Promise<void> {
    const target = await ws.restoreTarget();
    try {
      const result = await ws.run(['restore', 'pg', id, target]);
      expect(result.exitCode, result.stdout).toBe(1);
      expect(result.stderr).toMatch(message);
      if (nothingWritten) expect(await readdir(target)).toEqual([]);
      else expect(await stat(path.join(target, 'global', 'pg_control')).catch(() => undefined)).toBeUndefined();
    } finally {
      await rm(ws.repoDir, { recursive: true, force: true });
      await cp(pristine, ws.repoDir, { recursive: true });
    }
  }

  it('the chain restores as written', async () => {
    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', incr2.id, target])).exitCode).toBe(0);
  });

  it('refuses a truncated block map', async () => {
    const manifest = await readManifest(ws.configFile, incr2.id);
    const file = ownMapped(manifest);
    const bytes = await mapBytes(incr2.id, file);
    await plantMap(manifest, file, bytes.subarray(0, bytes.length - BLOCK_ENTRY));
    await refused(incr2.id, new RegExp(`block map of ${file.path}.* is truncated`));
  });

  it('refuses a block map changed without its sha256', async () => {
    const manifest = await readManifest(ws.configFile, incr2.id);
    const file = ownMapped(manifest);
    const bundle = bundlePath(incr2.id, file.bundle!);
    const bytes = await readFile(bundle);
    bytes[file.blockMap!.offset + file.blockMap!.storedSize - 1] ^= 0xff;
    await writeFile(bundle, bytes);
    await refused(incr2.id, new RegExp(`block map of ${file.path}.*does not match its sha256`));
  });

  it('refuses a block map swapped from another file', async () => {
    const manifest = await readManifest(ws.configFile, incr2.id);
    const a = ownMapped(manifest);
    const b = manifest.files.find((f) => f.blockMap && f.size !== a.size)!;
    await plantMap(manifest, a, await mapBytes(incr2.id, b));
    await refused(incr2.id, new RegExp(`block map of ${a.path}.*has \\d+ blocks, but the file has`));
  });

  it('refuses a block map whose entry points outside its super block', async () => {
    const manifest = await readManifest(ws.configFile, incr2.id);
    const file = ownMapped(manifest);
    const map = decodeBlockMap(await mapBytes(incr2.id, file), file.size, new Set([full.id, incr1.id, incr2.id]));
    map.entries.writeUInt16BE(200, 4); // block 0 at position 200 of a super block of at most 128 blocks
    await plantMap(manifest, file, encodeBlockMap(map));
    await refused(incr2.id, /block 0 lies outside its super block/);
  });

  it('refuses a block map pointing into a backup outside the chain', async () => {
    const manifest = await readManifest(ws.configFile, incr2.id);
    const file = ownMapped(manifest);
    const map = decodeBlockMap(await mapBytes(incr2.id, file), file.size, new Set([full.id, incr1.id, incr2.id]));
    map.refs[0] = '20200101T000000';
    await plantMap(manifest, file, encodeBlockMap(map));
    await refused(incr2.id, /points into backup 20200101T000000, which is not in this backup's chain/);
  });

  it('refuses a super block of another backup (block digests)', async () => {
    const manifest = await readManifest(ws.configFile, incr2.id);
    const file = ownMapped(manifest);
    const map = decodeBlockMap(await mapBytes(incr2.id, file), file.size, new Set([full.id, incr1.id, incr2.id]));
    const own = map.supers.findIndex((s) => map.refs[s.ref] === incr2.id);
    const fullEntry = (await readManifest(ws.configFile, full.id)).files.find((f) => f.path === file.path)!;
    const fullMap = decodeBlockMap(await mapBytes(full.id, fullEntry), fullEntry.size, new Set([full.id]));
    map.refs.push(full.id);
    map.supers[own] = { ...fullMap.supers[0], ref: map.refs.length - 1 };
    await plantMap(manifest, file, encodeBlockMap(map));
    // Checked per block (a file from several backups) or by the whole file's digest (one restored in order).
    await refused(incr2.id, /does not match its (digest in the block map|checksum)/, false);
  });

  it('refuses a chain with a missing or failed link, naming it', async () => {
    await rm(path.join(ws.repoDir, 'pg', 'backups', incr1.id, 'manifest.json'));
    await refused(incr2.id, new RegExp(`chain link ${incr1.id} \\(needed by ${incr2.id}\\) cannot be used: it is not in this repository`));
    const failed = await readManifest(ws.configFile, incr1.id);
    failed.status = 'FAILED';
    await rewrite(failed);
    await refused(incr2.id, new RegExp(`chain link ${incr1.id} \\(needed by ${incr2.id}\\) cannot be used: it is FAILED`));
  });

  it('refuses a parent that is not the real ancestor, and a cycle', async () => {
    const skipping = await readManifest(ws.configFile, incr2.id);
    skipping.parent = full.id; // its files and maps point into incr1
    await rewrite(skipping);
    await refused(incr2.id, new RegExp(`(points into backup ${incr1.id}|not a link of its chain)`));
    const looping = await readManifest(ws.configFile, full.id);
    looping.type = 'incr';
    looping.parent = incr2.id;
    await rewrite(looping);
    await refused(incr2.id, /the chain of parents loops/);
  });
});
