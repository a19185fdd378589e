import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser } from '@pgharbor/sandbox';
import { createWorkspace, pgbenchChecksums, pgharbor, switchAndWaitArchived, waitPromoted, type Workspace } from './harness.js';
import { readManifest, withRepository } from './repository-access.js';

interface StoredFileEntry {
  path: string;
  type: string;
  size: number;
  storedSize?: number;
  bundle?: number;
  offset?: number;
  compression: string;
  encryption: string;
}

const PASSPHRASE = `correct horse battery staple ${randomBytes(6).toString('hex')}`;
const MARKER = `pgharbor-plaintext-marker-${randomBytes(8).toString('hex')}`;
const CHUNK = 256 * 1024 + 16;
const HEADER = 32;

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else out.push(p);
  }
  return out;
}

/**
 * Client-side encryption: backups and WAL are stored encrypted (no
 * plaintext in the repository), restore and PITR work with the key, a
 * wrong or missing key fails before anything is written, and tampering
 * (a flipped byte, a truncation, reordered chunks) stops the restore,
 * naming the file.
 */
describe('encrypted repository (AES-256-GCM, passphrase)', () => {
  let ws: Workspace;
  let backupId: string;
  let plainBackupId: string;
  let afterFirstLsn: string;
  let source: Record<string, string>;
  let baseText: string;

  /** A config file beside the workspace's, with other repository settings. */
  async function variant(name: string, repoSettings: string): Promise<string> {
    const file = path.join(ws.dir, `${name}.yaml`);
    await writeFile(file, baseText.replace('- { type: posix, path: ./repo }', `- { type: posix, path: ./repo, ${repoSettings} }`));
    return file;
  }

  async function manifestOf(id: string): Promise<{ files: StoredFileEntry[] }> {
    return (await readManifest(ws.configFile, id)) as unknown as { files: StoredFileEntry[] };
  }

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
    const passFile = path.join(ws.dir, 'passphrase');
    await writeFile(passFile, PASSPHRASE + '\n', { mode: 0o600 });
    await chownToPgUser(passFile);
    baseText = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, baseText.replace('- { type: posix, path: ./repo }', '- { type: posix, path: ./repo, compression: zstd, encryption: { passphrase: { from_file: ./passphrase } } }'));

    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    await ws.cluster.query('CREATE TABLE notes (id int PRIMARY KEY, note text)');
    await ws.cluster.query(`INSERT INTO notes SELECT g, '${MARKER} ' || g FROM generate_series(1, 2000) g`);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    backupId = JSON.parse(backup.stdout).id;
    // After the backup: one row to keep, then one to lose, for PITR.
    await ws.cluster.query(`INSERT INTO notes VALUES (100001, 'kept ${MARKER}')`);
    [{ lsn: afterFirstLsn }] = await ws.cluster.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await ws.cluster.query(`INSERT INTO notes VALUES (100002, 'lost')`);
    await switchAndWaitArchived(ws.cluster);
    source = await pgbenchChecksums(ws.cluster);

    // A second backup without compression: big files span many encryption chunks (for the reorder test).
    const plainConfig = await variant('uncompressed', 'compression: none, encryption: { passphrase: { from_file: ./passphrase } }');
    const second = await pgharbor(['--config', plainConfig, '--json', 'backup', 'pg'], { asPgUser: true });
    expect(second.stderr).not.toMatch(/ERROR/);
    plainBackupId = JSON.parse(second.stdout).id;
  });
  afterAll(async () => ws?.cleanup());

  it('stores no plaintext: the marker rows are nowhere in the repository, every file and WAL object is encrypted', async () => {
    const files = await listFiles(path.join(ws.repoDir, 'pg'));
    expect(files.length).toBeGreaterThan(5);
    // Sanity: the marker is in the cluster's own files.
    const dataFiles = await listFiles(path.join(ws.cluster.dataDir, 'base'));
    let inData = false;
    for (const f of dataFiles) if ((await readFile(f)).includes(MARKER)) inData = true;
    expect(inData).toBe(true);
    for (const file of files) expect((await readFile(file)).includes(MARKER), file).toBe(false);

    const keyFile = JSON.parse(await readFile(path.join(ws.repoDir, 'pg', 'encryption.json'), 'utf8'));
    expect(keyFile.kdf).toMatchObject({ name: 'scrypt', N: 32768, r: 8, p: 1 });
    expect(JSON.stringify(keyFile)).not.toContain(PASSPHRASE);
    const manifest = await manifestOf(backupId);
    const stored = manifest.files.filter((f) => f.type === 'file' && f.size > 0);
    expect(stored.every((f) => f.encryption === 'aes-256-gcm' && f.compression === 'zstd')).toBe(true);
    const wal = files.filter((f) => f.includes('/wal/') && /[0-9A-F]{24}-[0-9a-f]{64}/.test(f));
    expect(wal.some((f) => f.endsWith('.zst.enc'))).toBe(true);
  });

  it('restores with the key, replays encrypted WAL to a point in time, and the data is there', async () => {
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', backupId, target, '--target-lsn', afterFirstLsn, '--target-action', 'promote']);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    const ids = (await restored.query<{ id: number }>('SELECT id FROM notes WHERE id > 100000 ORDER BY id')).map((r) => r.id);
    expect(ids).toEqual([100001]);
    const [{ n }] = await restored.query<{ n: string }>('SELECT count(*)::text AS n FROM notes');
    expect(n).toBe('2001');
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();
  });

  it('a wrong passphrase fails with a clear message before anything is written', async () => {
    const config = await variant('wrong', 'compression: zstd, encryption: { passphrase: { from_env: WRONG_PASSPHRASE } }');
    const target = await ws.restoreTarget();
    const result = await pgharbor(['--config', config, 'restore', 'pg', backupId, target], { env: { WRONG_PASSPHRASE: 'not the passphrase' } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('wrong encryption passphrase');
    expect(result.stderr).not.toContain('not the passphrase');
    expect(await readdir(target)).toEqual([]);
    // archive-get too: nothing is written for PostgreSQL to pick up.
    const [segment] = (await listFiles(path.join(ws.repoDir, 'pg', 'wal'))).map((f) => path.basename(f)).filter((n) => /^[0-9A-F]{24}-.*\.enc$/.test(n));
    const get = await pgharbor(['--config', config, 'archive-get', 'pg', segment.slice(0, 24), path.join(ws.dir, 'fetched')], { env: { WRONG_PASSPHRASE: 'x' } });
    expect(get.exitCode).toBe(1);
    expect(get.stderr).toContain('wrong encryption passphrase');
    expect(existsSync(path.join(ws.dir, 'fetched'))).toBe(false);
  });

  it('verify decrypts every file with the key; with a wrong key it reports that, not damage', async () => {
    const ok = await ws.run(['verify', 'pg', backupId, '--wal']);
    expect(ok.stdout).toContain('every checksum matches');
    expect(ok.exitCode).toBe(0);
    const config = await variant('wrong-verify', 'encryption: { passphrase: { from_env: WRONG_PASSPHRASE } }');
    const wrong = await pgharbor(['--config', config, 'verify', 'pg', backupId], { env: { WRONG_PASSPHRASE: 'nope' } });
    expect(wrong.exitCode).toBe(1);
    // The manifest is sealed: even listing what to verify needs the key.
    expect(wrong.stdout + wrong.stderr).toContain('wrong encryption passphrase');
  });

  it('check says whether the configured passphrase opens the key', async () => {
    const ok = await ws.run(['check', 'pg']);
    expect(ok.stdout).toMatch(/\tencryption: OK \(aes-256-gcm; the configured passphrase opens key [0-9a-f]{16}\)/);
    expect(ok.stdout).toMatch(/\tcompression: OK \(zstd level 1\)/);
    const config = await variant('wrong-check', 'encryption: { passphrase: { from_env: WRONG_PASSPHRASE } }');
    const wrong = await pgharbor(['--config', config, 'check', 'pg'], { env: { WRONG_PASSPHRASE: 'nope' } });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toMatch(/\tencryption: FAILED \(wrong encryption passphrase/);
  });

  it('a key file in place of the passphrase, or no encryption settings at all, are refused clearly', async () => {
    const keyFile = path.join(ws.dir, 'repo.key');
    await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const withKey = await variant('keyfile', 'encryption: { key: { from_file: ./repo.key } }');
    const target = await ws.restoreTarget();
    let result = await pgharbor(['--config', withKey, 'restore', 'pg', backupId, target]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('was set up with a passphrase');
    const none = await variant('none', 'compression: zstd');
    result = await pgharbor(['--config', none, 'restore', 'pg', backupId, target]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('holds encrypted data of server pg');
    expect(await readdir(target)).toEqual([]);
    // Nor does a host without the key write plaintext next to encrypted backups.
    result = await pgharbor(['--config', none, 'backup', 'pg']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('has no encryption settings');
    const missing = await variant('missing-env', 'encryption: { passphrase: { from_env: NO_SUCH_VARIABLE_X } }');
    result = await pgharbor(['--config', missing, 'restore', 'pg', backupId, target]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('NO_SUCH_VARIABLE_X is not set');
  });

  it('the passphrase can come from a command (argv, no shell)', async () => {
    const config = await variant('command', `encryption: { passphrase: { from_command: [cat, ${path.join(ws.dir, 'passphrase')}] } }`);
    const name = (await listFiles(path.join(ws.repoDir, 'pg', 'wal'))).map((f) => path.basename(f)).find((n) => /^[0-9A-F]{24}-[0-9a-f]{64}\.zst\.enc$/.test(n))!;
    const out = path.join(ws.dir, 'segment-from-command');
    const get = await pgharbor(['--config', config, 'archive-get', 'pg', name.slice(0, 24), out]);
    expect(get.stderr).toBe('');
    expect(get.exitCode).toBe(0);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(name.slice(25, 89));
  });

  describe('tampering stops the restore, naming the file', () => {
    async function tamper(id: string, pick: (files: StoredFileEntry[]) => StoredFileEntry, damage: (bundle: Buffer, file: StoredFileEntry, bundlePath: string) => Promise<void>) {
      const manifest = await manifestOf(id);
      const victim = pick(manifest.files.filter((f) => f.type === 'file' && f.bundle !== undefined));
      const bundlePath = path.join(ws.repoDir, 'pg', 'backups', id, `bundle-${String(victim.bundle).padStart(6, '0')}.dat`);
      const original = await readFile(bundlePath);
      await damage(Buffer.from(original), victim, bundlePath);
      try {
        const target = await ws.restoreTarget();
        const restore = await ws.run(['restore', 'pg', id, target]);
        expect(restore.exitCode).toBe(1);
        expect(restore.stderr).toContain(victim.path);
        expect(restore.stderr).toMatch(/HINT: .*incomplete/);
        expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
        // verify names the same file.
        const verify = await ws.run(['verify', 'pg', id]);
        expect(verify.exitCode).toBe(1);
        expect(verify.stdout).toContain(`PROBLEM ${victim.path}:`);
        return restore.stderr;
      } finally {
        await writeFile(bundlePath, original);
      }
    }
    const largest = (files: StoredFileEntry[]) => files.filter((f) => f.path !== 'global/pg_control').sort((a, b) => b.storedSize! - a.storedSize!)[0];

    it('a flipped byte', async () => {
      const stderr = await tamper(backupId, largest, async (bundle, file, p) => {
        bundle[file.offset! + HEADER + 1000] ^= 0x01;
        await writeFile(p, bundle);
      });
      // The largest file is a relation file, stored as super blocks: the flip lands in the first one, a single chunk.
      expect(stderr).toMatch(/chunk 0 (\(the last\) )?failed authentication/);
    });

    it('reordered chunks', async () => {
      const stderr = await tamper(plainBackupId, largest, async (bundle, file, p) => {
        expect(file.storedSize!).toBeGreaterThan(HEADER + 3 * CHUNK);
        const at = file.offset! + HEADER;
        const first = Buffer.from(bundle.subarray(at, at + CHUNK));
        bundle.copy(bundle, at, at + CHUNK, at + 2 * CHUNK);
        first.copy(bundle, at + CHUNK);
        await writeFile(p, bundle);
      });
      expect(stderr).toMatch(/chunk 0 failed authentication: the data was modified or its chunks reordered/);
    });

    it('a truncated file (the bundle cut short)', async () => {
      const last = (files: StoredFileEntry[]) => files.filter((f) => f.bundle === 1).sort((a, b) => b.offset! - a.offset!)[0];
      const stderr = await tamper(plainBackupId, last, async (_bundle, file, p) => {
        await truncate(p, file.offset! + file.storedSize! - 100);
      });
      expect(stderr).toMatch(/does not match its checksum/);
    });

    it('the final chunk cut off (manifest edited to match, with the key): the new last chunk is not marked final', async () => {
      const original = await manifestOf(plainBackupId);
      const manifest = structuredClone(original);
      const victim = largest(manifest.files.filter((f) => f.type === 'file' && f.bundle !== undefined));
      const lastChunk = (victim.storedSize! - HEADER) % CHUNK || CHUNK;
      victim.storedSize! -= lastChunk;
      // Only a holder of the key can change a sealed manifest: this is damage, not an attack.
      const rewrite = async (m: unknown) => {
        await withRepository(ws.configFile, (repository) => repository.writeManifest(m as never));
        await chownToPgUser(path.join(ws.repoDir, 'pg', 'backups', plainBackupId, 'manifest.json'));
      };
      await rewrite(manifest);
      try {
        const target = await ws.restoreTarget();
        const restore = await ws.run(['restore', 'pg', plainBackupId, target]);
        expect(restore.exitCode).toBe(1);
        expect(restore.stderr).toContain(`${victim.path} does not match its checksum`);
        expect(restore.stderr).toMatch(/chunk \d+ \(the last\) failed authentication: the data was modified, truncated or extended/);
        expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
      } finally {
        await rewrite(original);
      }
    });
  });
});
