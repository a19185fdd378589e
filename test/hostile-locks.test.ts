import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, type SandboxS3Server } from '@pgharbor/sandbox';
import { scratchDir } from './harness.js';

/**
 * Issue 16, item 5: two takers of a dead holder's lock must never both win.
 * N takers, each a separate process with its own storage driver, race for
 * the backup lock of server "pg" left by a process that died on this host;
 * exactly one may win, every round. With the lock of before (delete + put
 * without an owner check) several win.
 */
const TAKERS = 8;
const ROUNDS = 5;
const taker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'lock-taker.mjs');
const BUCKET = 'locks';

interface Store {
  name: string;
  driver: { type: 'posix' | 's3'; options: Record<string, unknown> };
  putLock(body: string): Promise<void>;
  keys(): Promise<string[]>;
}

/** A lock object as a holder that has since died left it (the format of this and of earlier versions). */
function deadHolderLock(): string {
  const pid = spawnSync(process.execPath, ['-e', '0']).pid;
  return JSON.stringify({ token: randomBytes(16).toString('hex'), pid, hostname: os.hostname(), since: new Date().toISOString(), operation: 'backup' });
}

/** TAKERS processes, each with its own driver, answering one line per command. */
class Takers {
  private readonly children: ChildProcessWithoutNullStreams[] = [];
  private readonly lines: AsyncIterator<string>[] = [];
  private readonly stderr: string[][] = [];

  constructor(driver: Store['driver']) {
    for (let i = 0; i < TAKERS; i++) {
      const child = spawn(process.execPath, ['--openssl-legacy-provider', taker, JSON.stringify(driver)], {
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      });
      const errors: string[] = [];
      child.stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
      this.children.push(child);
      this.stderr.push(errors);
      this.lines.push(createInterface({ input: child.stdout })[Symbol.asyncIterator]());
    }
  }

  /** Every taker's next line. */
  answers(): Promise<string[]> {
    return Promise.all(
      this.lines.map(async (lines, i) => {
        const line = await lines.next();
        if (line.done) throw new Error(`taker ${i} ended early: ${this.stderr[i].join('')}`);
        return line.value as string;
      }),
    );
  }

  /** Send a command to all at once (they are all waiting on stdin), collect the answers. */
  async all(command: string): Promise<string[]> {
    for (const child of this.children) child.stdin.write(`${command}\n`);
    return this.answers();
  }

  async close(): Promise<void> {
    for (const child of this.children) child.stdin.end();
    await Promise.all(this.children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)))));
  }
}

describe('a dead holder\'s repository lock, taken by many at once', () => {
  let s3: SandboxS3Server;
  let dir: string;
  const stores: Store[] = [];

  beforeAll(async () => {
    dir = await scratchDir('pgharbor-locks-');
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    const root = path.join(dir, 'repo');
    stores.push({
      name: 'posix',
      driver: { type: 'posix', options: { path: root } },
      putLock: async (body) => {
        await mkdir(path.join(root, 'pg', 'locks'), { recursive: true });
        await writeFile(path.join(root, 'pg', 'locks', 'backup.lock'), body);
      },
      // The posix driver removes directories that delete left empty.
      keys: async () => (await readdir(path.join(root, 'pg', 'locks')).catch(() => [] as string[])).sort(),
    });
    const s3Options = {
      bucket: BUCKET,
      prefix: 'repo',
      endpoint: s3.endpoint,
      force_path_style: true,
      // conditional_put on: s3rver is run with create-only writes enforced, as AWS, MinIO and Ceph do.
      conditional_put: 'on',
      access_key_id: { from_env: 'PGH_LOCK_S3_KEY' },
      secret_access_key: { from_env: 'PGH_LOCK_S3_SECRET' },
    };
    process.env.PGH_LOCK_S3_KEY = s3.accessKeyId;
    process.env.PGH_LOCK_S3_SECRET = s3.secretAccessKey;
    const { S3Client, PutObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
    const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    stores.push({
      name: 's3 (s3rver)',
      driver: { type: 's3', options: s3Options },
      putLock: async (body) => {
        await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'repo/pg/locks/backup.lock', Body: body }));
      },
      keys: async () => {
        const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'repo/pg/locks/' }));
        return (listed.Contents ?? []).map((o) => o.Key!.slice('repo/pg/locks/'.length)).sort();
      },
    });
  });
  afterAll(async () => {
    await s3?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const name of ['posix', 's3 (s3rver)']) {
    it(`${name}: exactly one of ${TAKERS} taker processes wins, ${ROUNDS} rounds in a row, and no breaker is left behind`, async () => {
      const store = stores.find((s) => s.name === name)!;
      const takers = new Takers(store.driver);
      try {
        expect(await takers.answers()).toEqual(Array(TAKERS).fill('ready'));
        for (let round = 0; round < ROUNDS; round++) {
          await store.putLock(deadHolderLock());
          const verdicts = await takers.all('go');
          const winners = verdicts.filter((v) => v === 'won');
          expect(winners, `round ${round}: ${verdicts.join(' | ')}`).toHaveLength(1);
          for (const verdict of verdicts.filter((v) => v !== 'won')) expect(verdict).toMatch(/^lost another backup of pg (is running|is being taken over by another process) \(pid \d+ on /);
          await takers.all('release');
          // The winner released its own lock; no breaker or other object is left.
          expect(await store.keys(), `round ${round}`).toEqual([]);
        }
      } finally {
        await takers.close();
      }
    });
  }
});
