import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser, startS3Server, type SandboxS3Server } from '@pgharbor/sandbox';
import { Harbor, silentLogger, type BackupManifest, type Repository } from '@pgharbor/core';
import { createWorkspace, pgbenchChecksums, pgharbor, switchAndWaitArchived, waitPromoted, type CliResult, type Workspace } from './harness.js';

/**
 * An attacker with write access to an encrypted repository (a leaked S3
 * key, a shared mount) but without its passphrase: whatever they put there
 * is refused, nothing is written or served, and the intact backups and WAL
 * still restore. Run against a posix repository (zstd) and an S3 one
 * (s3rver, uncompressed), both encrypted; a plain posix repository shows
 * what a manifest checksum catches there (damage, not tampering).
 *
 * The attacker is given the best case: the test decrypts the real manifest
 * (the attacker would only know what the cluster looks like) and writes
 * through the storage driver, as anyone with the bucket's credentials can.
 */
const PASSPHRASE = `hostile repo passphrase ${randomBytes(6).toString('hex')}`;
const BUCKET = 'pgharbor';
const EVIL_HBA = Buffer.from('# planted\nlocal all all trust\nhost all all 0.0.0.0/0 trust\n');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('an encrypted repository authenticates what it serves', () => {
  let s3: SandboxS3Server;
  let ws: Workspace;
  let harbor: Harbor;
  let source: Record<string, string>;
  let afterLsn: string;
  /** Two DONE backups in each repository, [older, newer]. */
  const backups: Record<number, [string, string]> = {};
  let plainBackup: string;

  const run = (args: string[]): Promise<CliResult> => ws.run(args);
  const repositoryOf = async (index: number): Promise<Repository> => harbor.server('pg').repository(index);

  /** Write (or delete) an object as the attacker; returns how to put the original back. */
  async function plant(index: number, key: string, bytes: Buffer | undefined): Promise<() => Promise<void>> {
    const { storage } = await repositoryOf(index);
    const original = (await storage.stat(key)) ? await readBytes(index, key) : undefined;
    const write = async (content: Buffer | undefined) => {
      if (content === undefined) await storage.delete(key);
      else await storage.put(key, content);
      await chownIfLocal(index, key);
    };
    await write(bytes);
    return () => write(original);
  }

  /** Objects the test writes on posix belong to root: give them to postgres, as whom pgharbor runs. */
  async function chownIfLocal(index: number, key: string): Promise<void> {
    const local = (await repositoryOf(index)).storage.localPath?.(key);
    if (local && existsSync(local)) await chownToPgUser(path.dirname(local));
  }

  async function readBytes(index: number, key: string): Promise<Buffer> {
    const { storage } = await repositoryOf(index);
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.get(key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async function walObjects(index: number): Promise<{ key: string; name: string; sha256: string }[]> {
    const { storage } = await repositoryOf(index);
    const out: { key: string; name: string; sha256: string }[] = [];
    for await (const object of storage.list('pg/wal/')) {
      const match = /\/([0-9A-F]{24})-([0-9a-f]{64})(\.zst)?\.enc$/.exec(object.key);
      if (match) out.push({ key: object.key, name: match[1], sha256: match[2] });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** A restore that must fail before writing anything. */
  async function refusedRestore(args: string[], message: string | RegExp): Promise<CliResult> {
    const target = await ws.restoreTarget();
    const result = await run(['restore', 'pg', ...args, target]);
    expect(result.stderr).toMatch(message);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).not.toMatch(/\n\s+at /); // one line and a hint, no stack
    expect(await readdir(target)).toEqual([]);
    return result;
  }

  async function refusedGet(index: number, name: string, message: string | RegExp): Promise<void> {
    const out = path.join(ws.dir, `fetched-${randomBytes(4).toString('hex')}`);
    const result = await pgharbor(['--config', await onlyRepository(index), 'archive-get', 'pg', name, out], { asPgUser: true });
    expect(result.stderr).toMatch(message);
    expect(result.exitCode).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(ws.dir)).filter((f) => f.startsWith('.fetched-'))).toEqual([]); // no temporary left either
  }

  /** archive-get reads every repository in turn: a config with only the one under attack. */
  const single = new Map<number, string>();
  async function onlyRepository(index: number): Promise<string> {
    if (single.has(index)) return single.get(index)!;
    const text = await readFile(ws.configFile, 'utf8');
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.trim() === 'repositories:');
    const repos = lines.slice(start + 1).filter((l) => l.trim().startsWith('- {'));
    const file = path.join(ws.dir, `only-repo-${index}.yaml`);
    await writeFile(file, [...lines.slice(0, start + 1), repos[index - 1], ''].join('\n'));
    await chownToPgUser(file);
    single.set(index, file);
    return file;
  }

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    ws = await createWorkspace({ asPgUser: true, archive: true });
    for (const [name, value] of [['passphrase', PASSPHRASE], ['s3.id', s3.accessKeyId], ['s3.secret', s3.secretAccessKey]]) {
      await writeFile(path.join(ws.dir, name), value + '\n', { mode: 0o600 });
      await chownToPgUser(path.join(ws.dir, name));
    }
    const encryption = 'encryption: { passphrase: { from_file: ./passphrase } }';
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(
      ws.configFile,
      config.replace(
        '      - { type: posix, path: ./repo }\n',
        [
          `      - { type: posix, path: ./repo, compression: zstd, ${encryption} }`,
          `      - { type: s3, name: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: ${BUCKET}, prefix: hostile, access_key_id: { from_file: ./s3.id }, secret_access_key: { from_file: ./s3.secret }, compression: none, ${encryption} }`,
          '      - { type: posix, name: plain, path: ./repo-plain, compression: none }',
          '',
        ].join('\n'),
      ),
    );
    harbor = await Harbor.load({ configFile: ws.configFile, logger: silentLogger });

    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    await ws.cluster.query('CREATE TABLE notes (id int PRIMARY KEY, note text)');
    await ws.cluster.query(`INSERT INTO notes SELECT g, 'row ' || g FROM generate_series(1, 1000) g`);
    for (const index of [1, 2]) {
      const first = await run(['--json', 'backup', 'pg', '--repo', String(index)]);
      expect(first.stderr).not.toMatch(/ERROR/);
      backups[index] = [JSON.parse(first.stdout).id, ''];
    }
    await ws.cluster.query(`INSERT INTO notes VALUES (5000, 'between the backups')`);
    await switchAndWaitArchived(ws.cluster);
    for (const index of [1, 2]) {
      const second = await run(['--json', 'backup', 'pg', '--repo', String(index)]);
      expect(second.stderr).not.toMatch(/ERROR/);
      backups[index][1] = JSON.parse(second.stdout).id;
    }
    const plain = await run(['--json', 'backup', 'pg', '--repo', '3']);
    expect(plain.stderr).not.toMatch(/ERROR/);
    plainBackup = JSON.parse(plain.stdout).id;
    // For PITR: one row to keep, then one to lose.
    await ws.cluster.query(`INSERT INTO notes VALUES (100001, 'kept')`);
    [{ lsn: afterLsn }] = await ws.cluster.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await ws.cluster.query(`INSERT INTO notes VALUES (100002, 'lost')`);
    await switchAndWaitArchived(ws.cluster);
    await switchAndWaitArchived(ws.cluster);
    source = await pgbenchChecksums(ws.cluster);
  }, 300_000);
  afterAll(async () => {
    await harbor?.close();
    await ws?.cleanup();
    await s3?.destroy();
  });

  describe.each([
    { index: 1, kind: 'posix (zstd)' },
    { index: 2, kind: 'S3 (uncompressed)' },
  ])('$kind repository', ({ index }) => {
    const repo = ['--repo', String(index)];
    const manifestKey = (id: string) => `pg/backups/${id}/manifest.json`;

    it('stores sealed manifests and a MAC on identity.json: no file name in the clear', async () => {
      const [older] = backups[index];
      const stored = await readBytes(index, manifestKey(older));
      expect(stored.subarray(0, 4).toString()).toBe('PGHE');
      expect(stored.includes('pg_hba.conf')).toBe(false);
      const identity = JSON.parse((await readBytes(index, 'pg/identity.json')).toString());
      expect(identity.mac).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    });

    it('a plaintext pg_hba.conf substituted through a forged plain manifest is refused; nothing is written', async () => {
      const [older] = backups[index];
      const manifest = (await (await repositoryOf(index)).readManifest(older))!;
      const entry = manifest.files.find((f) => f.path === 'pg_hba.conf')!;
      Object.assign(entry, { bundle: 99, offset: 0, size: EVIL_HBA.length, storedSize: EVIL_HBA.length, digest: `sha256:${sha256(EVIL_HBA)}`, compression: 'none', encryption: 'none' });
      const undoBundle = await plant(index, `pg/backups/${older}/bundle-000099.dat`, EVIL_HBA);
      const undo = await plant(index, manifestKey(older), Buffer.from(JSON.stringify(manifest, null, 1) + '\n'));
      try {
        const result = await refusedRestore([older, ...repo], /the manifest is plain JSON in an encrypted repository: not authenticated, refused/);
        expect(result.stderr).toMatch(/HINT: .*pgharbor seal-manifests pg --repo \d/);
        // Nor does the explicit opt-in take it: the entry is stored in the clear.
        const seal = await run(['seal-manifests', 'pg', ...repo]);
        expect(seal.exitCode).toBe(1);
        expect(seal.stdout).toMatch(new RegExp(`refused ${older}: .*pg_hba.conf is stored unencrypted in an encrypted repository`));
        expect((await readBytes(index, manifestKey(older))).subarray(0, 1).toString()).toBe('{'); // left as it was
      } finally {
        await undo();
        await undoBundle();
      }
    });

    it('a plaintext entry is refused even in a manifest sealed with the key (defence in depth)', async () => {
      const [older] = backups[index];
      const repository = await repositoryOf(index);
      const original = await readBytes(index, manifestKey(older));
      const manifest = (await repository.readManifest(older))!;
      Object.assign(manifest.files.find((f) => f.path === 'pg_hba.conf')!, { bundle: 99, offset: 0, size: EVIL_HBA.length, storedSize: EVIL_HBA.length, digest: `sha256:${sha256(EVIL_HBA)}`, compression: 'none', encryption: 'none' });
      const undoBundle = await plant(index, `pg/backups/${older}/bundle-000099.dat`, EVIL_HBA);
      await repository.writeManifest(manifest); // sealed: only a holder of the key could do this
      await chownIfLocal(index, manifestKey(older));
      try {
        await refusedRestore([older, ...repo], /file pg_hba.conf is stored unencrypted in an encrypted repository: refused/);
        const verify = await run(['verify', 'pg', older, ...repo]);
        expect(verify.exitCode).toBe(1);
        expect(verify.stdout).toMatch(/pg_hba.conf is stored unencrypted in an encrypted repository/);
      } finally {
        await plant(index, manifestKey(older), original);
        await undoBundle();
      }
    });

    it('a forged plain manifest with a later id is not taken for the latest backup', async () => {
      const [older] = backups[index];
      const manifest = (await (await repositoryOf(index)).readManifest(older))! as BackupManifest;
      const forgedId = '29991231T235959';
      const undo = await plant(index, manifestKey(forgedId), Buffer.from(JSON.stringify({ ...manifest, id: forgedId }, null, 1) + '\n'));
      try {
        // Listed as INVALID with a warning, never taken for a backup: "latest" is still the newest authentic one.
        const list = await run(['list-backups', 'pg', ...repo]);
        expect(list.exitCode).toBe(0);
        expect(list.stdout).toMatch(new RegExp(`${forgedId}.* - INVALID \\(backup ${forgedId} of pg .*plain JSON in an encrypted repository: not authenticated, refused\\)`));
        expect(list.stderr).toMatch(new RegExp(`WARN: backup ${forgedId} of pg .*not authenticated, refused; skipped`));
        const latest = await run(['--json', 'show-backup', 'pg', 'latest', ...repo]);
        expect(latest.exitCode, latest.stderr).toBe(0);
        expect(JSON.parse(latest.stdout).id).toBe(backups[index].at(-1));
        await refusedRestore([forgedId, ...repo], /not authenticated, refused/);
      } finally {
        await undo();
      }
    });

    it("a manifest copied from another backup, or truncated, or extended, fails authentication", async () => {
      const [older, newer] = backups[index];
      const olderManifest = await readBytes(index, manifestKey(older));
      const newerManifest = await readBytes(index, manifestKey(newer));
      for (const forged of [olderManifest, newerManifest.subarray(0, newerManifest.length - 7), Buffer.concat([newerManifest, randomBytes(40)])]) {
        const undo = await plant(index, manifestKey(newer), forged);
        try {
          await refusedRestore([newer, ...repo], new RegExp(`backup ${newer} of pg .*: the manifest failed authentication`));
        } finally {
          await undo();
        }
      }
    });

    it('an encrypted bundle swapped with one of another backup fails authentication, naming the file', async () => {
      const [older, newer] = backups[index];
      const bundle = (id: string) => `pg/backups/${id}/bundle-000001.dat`;
      const undo = await plant(index, bundle(newer), await readBytes(index, bundle(older)));
      try {
        // The first file that does not open stops it: bound to another backup (or, where offsets moved, no object at all).
        await refusedRestore([newer, ...repo], new RegExp(`backup ${newer}: file \\S+: (chunk 0 (\\(the last\\) )?failed authentication: .*belongs to another place|not an encrypted pgharbor object)`));
      } finally {
        await undo();
      }
    });

    it('a truncated or extended bundle stops the restore before pg_control is written', async () => {
      const [, newer] = backups[index];
      const key = `pg/backups/${newer}/bundle-000001.dat`;
      const original = await readBytes(index, key);
      for (const damaged of [original.subarray(0, original.length - 100), Buffer.concat([original.subarray(0, original.length - 16), randomBytes(64)])]) {
        const undo = await plant(index, key, damaged);
        try {
          const target = await ws.restoreTarget();
          const result = await run(['restore', 'pg', newer, ...repo, target]);
          expect(result.exitCode).toBe(1);
          expect(result.stderr).toMatch(/does not match its checksum|failed authentication/);
          expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
        } finally {
          await undo();
        }
      }
    });

    it('archive-get refuses a plaintext WAL object and serves nothing', async () => {
      const [victim] = await walObjects(index);
      const out = path.join(ws.dir, `plain-${index}`);
      const get = await pgharbor(['--config', await onlyRepository(index), 'archive-get', 'pg', victim.name, out], { asPgUser: true });
      expect(get.exitCode).toBe(0);
      const plain = await readFile(out);
      const plainKey = victim.key.replace(/(\.zst)?\.enc$/, '');
      const undoPlain = await plant(index, plainKey, plain);
      const undoEncrypted = await plant(index, victim.key, undefined);
      try {
        await refusedGet(index, victim.name, new RegExp(`${victim.name} is stored unencrypted in an encrypted repository .*: refused`));
      } finally {
        await undoEncrypted();
        await undoPlain();
        await plant(index, plainKey, undefined);
      }
    });

    it('archive-get refuses a WAL object renamed to another segment, and one truncated or extended', async () => {
      const [first, second] = await walObjects(index);
      const bytes = await readBytes(index, first.key);
      // The attacker names it as the second segment, with the first one's (correct) checksum.
      const renamed = second.key.replace(second.sha256, first.sha256);
      const undoSecond = await plant(index, second.key, undefined);
      const undoRenamed = await plant(index, renamed, bytes);
      try {
        await refusedGet(index, second.name, /chunk 0 failed authentication: .*belongs to another place/);
      } finally {
        await undoRenamed();
        await plant(index, renamed, undefined);
        await undoSecond();
      }
      for (const damaged of [bytes.subarray(0, bytes.length - 1), Buffer.concat([bytes, randomBytes(32)])]) {
        const undo = await plant(index, first.key, damaged);
        try {
          await refusedGet(index, first.name, /failed authentication|truncated/);
        } finally {
          await undo();
        }
      }
    });

    it('a changed identity.json fails authentication', async () => {
      const original = await readBytes(index, 'pg/identity.json');
      const identity = JSON.parse(original.toString());
      const undo = await plant(index, 'pg/identity.json', Buffer.from(JSON.stringify({ ...identity, systemIdentifier: '1234567890' })));
      try {
        const backup = await run(['backup', 'pg', ...repo]);
        expect(backup.exitCode).toBe(1);
        expect(backup.stderr).toMatch(/the server identity pg\/identity.json in .* failed authentication/);
      } finally {
        await undo();
      }
    });

    it('a tampered encryption.json (huge scrypt N, a short GCM tag) fails fast with a clear message', async () => {
      const original = await readBytes(index, 'pg/encryption.json');
      const keyFile = JSON.parse(original.toString());
      const cases: [object, RegExp][] = [
        [{ ...keyFile, kdf: { ...keyFile.kdf, N: 2 ** 30 } }, /scrypt N 1073741824 is not a power of two from 2\^10 to 2\^20/],
        [{ ...keyFile, kdf: { ...keyFile.kdf, r: 4096 } }, /scrypt r 4096 is not from 1 to 32/],
        [{ ...keyFile, wrappedKey: { ...keyFile.wrappedKey, tag: Buffer.from(keyFile.wrappedKey.tag, 'base64').subarray(0, 4).toString('base64') } }, /the wrapped key's GCM tag is not 16 bytes/],
        [{ ...keyFile, keyId: '0000000000000000' }, /its keyId 0000000000000000 is not the id of the key it holds/],
      ];
      for (const [tampered, message] of cases) {
        const undo = await plant(index, 'pg/encryption.json', Buffer.from(JSON.stringify(tampered)));
        try {
          const started = Date.now();
          const list = await run(['list-backups', 'pg', ...repo]);
          expect(list.stderr).toMatch(message);
          expect(list.stderr).toMatch(/is not a valid pgharbor key file/);
          expect(list.exitCode).toBe(1);
          expect(Date.now() - started).toBeLessThan(10_000);
          await refusedGet(index, (await walObjects(index))[0].name, message);
        } finally {
          await undo();
        }
      }
    });

    it('a config without encryption is refused on the encrypted repository (exit 2), and says which way', async () => {
      const file = path.join(ws.dir, `no-encryption-${index}.yaml`);
      const text = await readFile(await onlyRepository(index), 'utf8');
      await writeFile(file, text.replace(/, encryption: \{ passphrase: \{ from_file: \.\/passphrase \} \}/, ''));
      const list = await pgharbor(['--config', file, 'list-backups', 'pg']);
      expect(list.exitCode).toBe(2);
      expect(list.stderr).toMatch(/holds encrypted data of server pg \(pg\/encryption.json: an encrypted repository\), but .* has no encryption settings/);
      const get = await pgharbor(['--config', file, 'archive-get', 'pg', (await walObjects(index))[0].name, path.join(ws.dir, 'nope')]);
      expect(get.exitCode).not.toBe(0);
      expect(existsSync(path.join(ws.dir, 'nope'))).toBe(false);
    });

    it('the intact backups still restore: PITR through archive-get, PostgreSQL started, data checked', async () => {
      const [, newer] = backups[index];
      const target = await ws.restoreTarget();
      const restore = await run(['restore', 'pg', newer, ...repo, target, '--target-lsn', afterLsn, '--target-action', 'promote']);
      expect(restore.stderr).not.toMatch(/ERROR/);
      expect(restore.exitCode).toBe(0);
      const restored = await ws.startRestored(target);
      await waitPromoted(restored);
      const ids = (await restored.query<{ id: number }>('SELECT id FROM notes WHERE id > 1000 ORDER BY id')).map((r) => r.id);
      expect(ids).toEqual([5000, 100001]);
      expect(await pgbenchChecksums(restored)).toEqual(source);
      await restored.stop();
      // And archive-get of an intact segment serves the right bytes.
      const [intact] = await walObjects(index);
      const out = path.join(ws.dir, `intact-${index}`);
      const get = await pgharbor(['--config', await onlyRepository(index), 'archive-get', 'pg', intact.name, out], { asPgUser: true });
      expect(get.exitCode).toBe(0);
      expect(sha256(await readFile(out))).toBe(intact.sha256);
    });
  });

  describe('manifests written by an earlier pgharbor (plain JSON in an encrypted repository)', () => {
    it('are refused until seal-manifests accepts them; then they restore', async () => {
      const [older] = backups[1];
      const repository = await repositoryOf(1);
      const manifest = (await repository.readManifest(older))!;
      // What pgharbor 0.1 stored: JSON.stringify(manifest, null, 1), no checksum, no seal.
      const undo = await plant(1, `pg/backups/${older}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 1) + '\n'));
      try {
        const list = await run(['list-backups', 'pg', '--repo', '1']);
        expect(list.stdout).toMatch(new RegExp(`${older}.* - INVALID \\(.*not authenticated, refused\\)`));
        expect(list.stderr).toMatch(/HINT: if an earlier pgharbor wrote it .* pgharbor seal-manifests pg --repo 1/);
        const dry = await run(['seal-manifests', 'pg', '--repo', '1', '--dry-run']);
        expect(dry.stdout).toContain(`would seal ${older}`);
        expect(dry.exitCode).toBe(0);
        expect((await run(['list-backups', 'pg', '--repo', '1'])).stdout).toMatch(new RegExp(`${older}.* - INVALID`));
        const seal = await run(['seal-manifests', 'pg', '--repo', '1']);
        expect(seal.stderr).toBe('');
        expect(seal.stdout).toContain(`sealed ${older}`);
        expect(seal.exitCode).toBe(0);
        expect((await readBytes(1, `pg/backups/${older}/manifest.json`)).subarray(0, 4).toString()).toBe('PGHE');
        const again = await run(['list-backups', 'pg', '--repo', '1']);
        expect(again.exitCode).toBe(0);
        expect(again.stdout).toContain(older);
        expect(again.stdout).not.toContain('INVALID');
        const target = await ws.restoreTarget();
        const restore = await run(['restore', 'pg', older, '--repo', '1', target, '--target-immediate', '--target-action', 'promote']);
        expect(restore.stderr).not.toMatch(/ERROR/);
        expect(restore.exitCode).toBe(0);
        const restored = await ws.startRestored(target);
        await waitPromoted(restored);
        const [{ n }] = await restored.query<{ n: string }>('SELECT count(*)::text AS n FROM notes');
        expect(n).toBe('1000');
        await restored.stop();
      } finally {
        await undo().catch(() => {});
      }
    });
  });

  describe('a plain repository', () => {
    it("keeps a checksum in each manifest: a flipped byte is detected (tampering is not: docs/security.md)", async () => {
      const key = `pg/backups/${plainBackup}/manifest.json`;
      const original = await readBytes(3, key);
      expect(original.toString()).toMatch(/^\{\n "checksum": "sha256:[0-9a-f]{64}",\n "formatVersion"/);
      const flipped = Buffer.from(original);
      const at = flipped.indexOf('"size": ') + 8;
      flipped[at] = flipped[at] === 0x39 ? 0x38 : flipped[at] + 1; // one digit of a size
      const undo = await plant(3, key, flipped);
      try {
        await refusedRestore([plainBackup, '--repo', '3'], new RegExp(`backup ${plainBackup} of pg in plain .*: the manifest is damaged: its sha256 does not match its content`));
      } finally {
        await undo();
      }
      const target = await ws.restoreTarget();
      const restore = await run(['restore', 'pg', plainBackup, '--repo', '3', target, '--target-immediate', '--target-action', 'promote']);
      expect(restore.exitCode).toBe(0);
    });

    it('a config that adds encryption to it is refused: it already holds unencrypted backups (exit 2)', async () => {
      const file = path.join(ws.dir, 'encrypt-plain.yaml');
      const text = await readFile(await onlyRepository(3), 'utf8');
      await writeFile(file, text.replace('compression: none }', 'compression: none, encryption: { passphrase: { from_file: ./passphrase } } }'));
      await chownToPgUser(file);
      const backup = await pgharbor(['--config', file, 'backup', 'pg'], { asPgUser: true });
      expect(backup.exitCode).toBe(2);
      expect(backup.stderr).toMatch(/has encryption settings, but .* already holds unencrypted backups or WAL of server pg .* and no encryption key/);
      expect(existsSync(path.join(ws.dir, 'repo-plain', 'pg', 'encryption.json'))).toBe(false);
    });
  });
});
