import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harbor, createLogger, isRelationFile, walKey, type BackupManifest, type ManifestFile, type Repository } from '@pgharbor/core';
import { startS3Server, type SandboxS3Server } from '@pgharbor/sandbox';
import { encodeBuffer } from '../packages/core/src/codec/stream-codec.js';
import { gzipBomb, lz4BlockBomb, zstdBlockBomb, zstdFramesOf1MiB } from '../packages/core/src/testing/decoding-bombs.js';
import { addS3Repository, createWorkspace, pgbenchChecksums, pgharbor, type CliResult, type Workspace } from './harness.js';

/**
 * Issue 16, item 4: a repository's bytes are another party's (a leaked S3
 * key, a shared mount), and a few kilobytes of lz4, zstd or gzip can claim
 * gigabytes. Bombs of each codec, and objects that decode to more or fewer
 * bytes than the manifest says, are planted into real backups of a posix
 * and an S3 (s3rver) repository, through pgharbor's own storage drivers
 * and manifest writer, as an attacker with write access would. restore,
 * restore --delta, verify and archive-get must each fail with one line
 * naming the file, in bounded memory (the child's peak RSS, read at its
 * exit by test/peak-rss.cjs), leaving nothing that looks complete; the
 * intact backup still restores and PostgreSQL starts on it.
 */
const BUCKET = 'pgharbor';
const MiB = 1024 * 1024;
const PEAK_RSS_PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peak-rss.cjs');
/**
 * What a bomb may cost over the same command on intact data: the decoders
 * hold at most a few frames (zstd's passes at most 8 MiB each); reading
 * past a forged object to the next file (verify) adds stream buffers. The whole
 * CLI process of a restore peaks at ~110-120 MB on intact data here (Node,
 * the CLI, the S3 SDK, 2 restore jobs), which no bound on decoding changes.
 */
const BOMB_ALLOWANCE_MB = 32;

/** What an attacker plants for one manifest entry: the stored bytes and what the entry then says. */
interface Forgery {
  label: string;
  stored: () => Buffer | Promise<Buffer>;
  compression: ManifestFile['compression'];
  /** The decoded content's sha256 and size, when the attacker makes them match a valid-looking object. */
  sha256?: string;
  size?: number;
  /** What the error must say after the file's name. */
  message: RegExp;
}

const sha256Of = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** sha256 of `bytes` bytes of 'A', without holding them. */
function sha256OfRun(bytes: number): string {
  const hash = createHash('sha256');
  const block = Buffer.alloc(MiB, 0x41);
  for (let left = bytes; left > 0; left -= MiB) hash.update(left >= MiB ? block : block.subarray(0, left));
  return hash.digest('hex');
}

const forgeries: Forgery[] = [
  { label: 'a zstd frame decoding to 2.5 GiB (160 KB stored)', stored: () => zstdBlockBomb(2560 * MiB), compression: 'zstd', message: /has a zstd frame that decodes to more than 1048576 bytes/ },
  { label: 'an lz4 frame decoding to 1 GiB (4 MB stored)', stored: () => lz4BlockBomb(256), compression: 'lz4', message: /has an lz4 frame stored in more than 1114112 bytes/ },
  { label: 'an lz4 frame of one block decoding to 4 MiB', stored: () => lz4BlockBomb(1), compression: 'lz4', message: /has an lz4 frame that decodes to more than 1048576 bytes/ },
  { label: 'gzip decoding to 1 GiB (1 MB stored)', stored: () => gzipBomb(1024), compression: 'gzip', message: /decodes to more than the 8192 bytes expected/ },
  {
    label: 'valid zstd frames of 64 MiB, with their sha256, for a file of 8 KiB',
    stored: () => zstdFramesOf1MiB(64),
    compression: 'zstd',
    sha256: sha256OfRun(64 * MiB),
    message: /decodes to more than the 8192 bytes expected/,
  },
  {
    label: 'a file stored as it is, 64 MiB with its sha256, for a file of 8 KiB',
    stored: () => Buffer.alloc(64 * MiB, 0x41),
    compression: 'none',
    sha256: sha256OfRun(64 * MiB),
    message: /its stored data decodes to more than the 8192 bytes expected/,
  },
  {
    label: 'a truncated object: valid zstd of 4 KiB, with its sha256, for a file of 8 KiB',
    stored: () => encodeBuffer(Buffer.alloc(4096, 0x41), 'zstd', 1, undefined),
    compression: 'zstd',
    sha256: sha256OfRun(4096),
    message: /decodes to 4096 bytes, not the 8192 expected \(truncated\)/,
  },
];

describe.each([
  { kind: 'posix', repo: 1 },
  { kind: 's3', repo: 2 },
])('hostile decoding, $kind repository', ({ kind, repo }) => {
  let s3: SandboxS3Server;
  let ws: Workspace;
  let harbor: Harbor;
  let repository: Repository;
  let backupId: string;
  let intact: BackupManifest;
  let victim: ManifestFile;
  let source: Record<string, string>;
  /** Peak RSS (MB) of each command on intact data, and of each refusal: printed at the end for docs. */
  const baseline: Record<string, number> = {};
  const peaks: string[] = [];
  function expectBoundedMemory(command: 'restore' | 'verify' | 'archive-get', label: string, peakMb: number): void {
    peaks.push(`${kind} ${command} ${label}: ${peakMb.toFixed(0)} MB (intact: ${baseline[command].toFixed(0)} MB)`);
    expect(peakMb).toBeLessThan(baseline[command] + BOMB_ALLOWANCE_MB);
  }

  /** pgharbor with the peak-RSS probe; returns its result and peak RSS in MB. */
  async function run(args: string[]): Promise<CliResult & { peakMb: number }> {
    const probe = path.join(ws.dir, `peak-rss-${Date.now()}`);
    const result = await pgharbor(['--config', ws.configFile, ...args], { env: { NODE_OPTIONS: `--require ${PEAK_RSS_PROBE}`, PGHARBOR_TEST_PEAK_RSS: probe } });
    const peakMb = Number(await readFile(probe, 'utf8')) / 1024;
    await rm(probe, { force: true });
    return { ...result, peakMb };
  }

  /** Plant `forgery` for the victim (a new bundle object and its manifest entry); undone by `unforge`. */
  async function forge(forgery: Forgery): Promise<void> {
    const stored = await forgery.stored();
    const bundle = 9000 + forgeries.indexOf(forgery);
    await repository.storage.put(repository.bundleKey(backupId, bundle), stored);
    const entry: ManifestFile = { ...victim, compression: forgery.compression, encryption: 'none', bundle, offset: 0, storedSize: stored.length, digest: forgery.sha256 !== undefined ? `sha256:${forgery.sha256}` : victim.digest, size: forgery.size ?? victim.size };
    await repository.writeManifest({ ...intact, files: intact.files.map((f) => (f === victim ? entry : f)) });
  }
  async function unforge(): Promise<void> {
    await repository.writeManifest(intact);
  }

  function expectOneClearError(result: CliResult, message: RegExp): void {
    expect(result.exitCode).toBe(1);
    const error = result.stderr.split('\n').find((line) => line.startsWith('ERROR'));
    expect(error).toContain(victim.path);
    expect(error).toMatch(message);
    expect(result.stderr).toMatch(/HINT/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  }

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    ws = await createWorkspace();
    await addS3Repository(ws, s3, { bucket: BUCKET, prefix: 'hostile', env: 'PGH_HOSTILE_S3' });
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    source = await pgbenchChecksums(ws.cluster);
    const backup = await ws.run(['--json', 'backup', 'pg', '--repo', String(repo)]);
    expect(backup.exitCode).toBe(0);
    backupId = JSON.parse(backup.stdout).id;
    harbor = await Harbor.load({ configFile: ws.configFile, logger: createLogger({ level: 'error' }) });
    repository = await harbor.server('pg').repository(repo);
    intact = (await repository.readManifest(backupId))!;
    // A file stored whole (relation files are stored as blocks: their super blocks go through the same bounded decoder).
    victim = intact.files.find((f) => f.type === 'file' && !isRelationFile(f.path) && f.path !== 'global/pg_control' && f.size === 8192 && f.bundle !== undefined)!;
    expect(victim).toBeDefined();
    const restore = await run(['restore', 'pg', backupId, await ws.restoreTarget(), '--repo', String(repo)]);
    expect(restore.exitCode).toBe(0);
    baseline.restore = restore.peakMb;
    const verify = await run(['verify', 'pg', backupId, '--repo', String(repo)]);
    expect(verify.exitCode).toBe(0);
    baseline.verify = verify.peakMb;
  });
  afterAll(async () => {
    console.log(`peak RSS:\n${peaks.join('\n')}`);
    await harbor?.close();
    await ws?.cleanup();
    await s3?.destroy();
  });

  for (const forgery of forgeries) {
    it(`restore and verify refuse ${forgery.label}: one line naming the file, bounded memory, nothing that looks complete`, async () => {
      await forge(forgery);
      try {
        const target = await ws.restoreTarget();
        const restore = await run(['restore', 'pg', backupId, target, '--repo', String(repo)]);
        expectOneClearError(restore, forgery.message);
        expect(restore.stderr).toMatch(/is incomplete \(no global\/pg_control/);
        expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
        expectBoundedMemory('restore', forgery.label, restore.peakMb);

        const verify = await run(['verify', 'pg', backupId, '--repo', String(repo)]);
        expect(verify.exitCode).toBe(1);
        expect(verify.stdout).toMatch(new RegExp(`PROBLEM ${victim.path}: .*${forgery.message.source}`));
        expectBoundedMemory('verify', forgery.label, verify.peakMb);
      } finally {
        await unforge();
      }
    });
  }

  it('restore --delta reads a bomb only where a file differs, and refuses it the same way; pg_control stays aside', async () => {
    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', backupId, target, '--repo', String(repo)])).exitCode).toBe(0);
    await rm(path.join(target, victim.path)); // the victim differs: delta must read it from the repository
    await forge(forgeries[0]);
    try {
      const delta = await run(['restore', 'pg', backupId, target, '--delta', '--repo', String(repo)]);
      expectOneClearError(delta, forgeries[0].message);
      expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
      expectBoundedMemory('restore', `--delta, ${forgeries[0].label}`, delta.peakMb);
    } finally {
      await unforge();
    }
  });

  it('the intact backup still restores, and PostgreSQL starts on it with the same data', async () => {
    const target = await ws.restoreTarget();
    const restore = await run(['restore', 'pg', backupId, target, '--repo', String(repo)]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();
  });

  describe('archive-get', () => {
    let segment: Buffer;
    beforeAll(async () => {
      const [{ file }] = await ws.cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
      segment = await readFile(path.join(ws.cluster.dataDir, 'pg_wal', file));
      await plant('0000000100000000000000B0', await encodeBuffer(segment, 'zstd', 1, undefined), '.zst', sha256Of(segment));
      const get = await run(['archive-get', 'pg', '0000000100000000000000B0', path.join(ws.dir, 'got-baseline')]);
      expect(get.exitCode).toBe(0);
      baseline['archive-get'] = get.peakMb;
    });

    /** Plant `stored` as archived WAL `name` (the name carries the sha256 archive-get checks: the attacker's to choose). */
    async function plant(name: string, stored: Buffer, suffix: string, sha256 = sha256Of(Buffer.from(name))): Promise<void> {
      await repository.storage.put(walKey('pg', name, sha256, suffix), stored);
    }

    async function expectRefused(name: string, message: RegExp): Promise<void> {
      const out = path.join(ws.dir, `got-${name}`);
      const get = await run(['archive-get', 'pg', name, out]);
      expect(get.exitCode).toBe(1);
      const error = get.stderr.split('\n').find((line) => line.startsWith('ERROR'))!;
      expect(error).toContain(`stored ${name} `);
      expect(error).toMatch(message);
      expectBoundedMemory('archive-get', name, get.peakMb);
      expect(existsSync(out)).toBe(false);
      expect((await readdir(ws.dir)).filter((f) => f.includes(`got-${name}`))).toEqual([]); // no temporary copy left
    }

    it('refuses a zstd, an lz4 and a gzip bomb named as segments, and a segment longer than its header says', async () => {
      await plant('0000000100000000000000A1', zstdBlockBomb(2560 * MiB), '.zst');
      await expectRefused('0000000100000000000000A1', /has a zstd frame that decodes to more than 1048576 bytes/);
      await plant('0000000100000000000000A2', lz4BlockBomb(256), '.lz4');
      await expectRefused('0000000100000000000000A2', /has an lz4 frame stored in more than/);
      await plant('0000000100000000000000A3', gzipBomb(1024), '.gz');
      await expectRefused('0000000100000000000000A3', /does not start with a WAL page header that gives a valid segment size/);
      const extended = Buffer.concat([segment, Buffer.alloc(MiB)]);
      await plant('0000000100000000000000A4', await encodeBuffer(extended, 'zstd', 1, undefined), '.zst', sha256Of(extended));
      await expectRefused('0000000100000000000000A4', new RegExp(`decodes to more than ${segment.length} bytes, the segment size its page header gives`));
      const truncated = segment.subarray(0, segment.length - 8192);
      await plant('0000000100000000000000A5', truncated, '', sha256Of(truncated));
      await expectRefused('0000000100000000000000A5', /the segment size its page header gives \(truncated\)/);
      await plant('00000009.history', gzipBomb(1024), '.gz');
      await expectRefused('00000009.history', /decodes to more than the 16777216 bytes it may have/);
    });

    it('serves a sound segment, compressed or not', async () => {
      for (const [name, suffix] of [
        ['0000000100000000000000B1', ''],
        ['0000000100000000000000B2', '.zst'],
      ] as const) {
        await plant(name, suffix ? await encodeBuffer(segment, 'zstd', 1, undefined) : segment, suffix, sha256Of(segment));
        const out = path.join(ws.dir, `got-${name}`);
        const get = await run(['archive-get', 'pg', name, out]);
        expect(get.stderr).toBe('');
        expect(get.exitCode).toBe(0);
        expect(sha256Of(await readFile(out))).toBe(sha256Of(segment));
      }
    });
  });
});
