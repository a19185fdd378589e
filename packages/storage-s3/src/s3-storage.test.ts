import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeStorageConformance } from '@pgharbor/core/testing';
import { redact, type Logger } from '@pgharbor/core';
import { startS3Server, type SandboxS3Server } from '@pgharbor/sandbox';
import plugin, { parsePartSize, s3StorageSchema, type S3StorageOptions } from './index.js';
import { createS3Storage, type S3Storage } from './s3-storage.js';

const MiB = 1024 * 1024;
const BUCKET = 'pgharbor-test';

// Like AWS, MinIO and Ceph: create-only writes are enforced by the store.
const s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
// s3rver as it is: it ignores If-None-Match.
const plain = await startS3Server({ buckets: [BUCKET] });
afterAll(async () => {
  await s3.destroy();
  await plain.destroy();
});

process.env.PGH_TEST_S3_KEY = s3.accessKeyId;
process.env.PGH_TEST_S3_SECRET = s3.secretAccessKey;

interface Captured extends Logger {
  lines: string[];
}
function captureLogger(): Captured {
  const lines: string[] = [];
  const push = (level: string) => (message: string) => void lines.push(`${level}: ${redact(message)}`);
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}

function options(server: SandboxS3Server, extra: Partial<S3StorageOptions> = {}): S3StorageOptions {
  process.env[`PGH_TEST_KEY_${server.accessKeyId}`] = server.accessKeyId;
  process.env[`PGH_TEST_SECRET_${server.accessKeyId}`] = server.secretAccessKey;
  return {
    bucket: BUCKET,
    prefix: `run-${randomBytes(6).toString('hex')}`,
    endpoint: server.endpoint,
    force_path_style: true,
    access_key_id: { from_env: `PGH_TEST_KEY_${server.accessKeyId}` },
    secret_access_key: { from_env: `PGH_TEST_SECRET_${server.accessKeyId}` },
    // Small parts so that the conformance suite's large object really goes multipart.
    part_size: '5MiB',
    upload_concurrency: 2,
    ...extra,
  };
}

function open(server: SandboxS3Server, extra: Partial<S3StorageOptions> = {}, logger: Logger = captureLogger()): S3Storage {
  return createS3Storage(options(server, extra), { logger, configDir: '/' });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describeStorageConformance('s3 (s3rver with conditional writes)', {
  create: async () => open(s3),
  // 5 MiB parts, 2 at a time: the driver holds about part_size × (upload_concurrency + 2)
  // ≈ 25 MiB, and s3rver runs in this same process, so its buffers count too.
  // 80 MiB (16 parts) is twice the budget: the memory probe runs.
  largeObjectBytes: 80 * MiB,
  memoryBudgetBytes: 40 * MiB,
  // Its own client (connections) on the same prefix, as another pgharbor process would have.
  reopen: async (driver) => open(s3, { prefix: (driver as S3Storage).root.replace(/\/$/, '') }),
});

describe('s3 storage', () => {
  const drivers: S3Storage[] = [];
  const track = (driver: S3Storage) => (drivers.push(driver), driver);
  afterEach(async () => {
    for (const driver of drivers.splice(0)) await driver.close();
  });

  it('uploads above part_size as a multipart upload, below it as one PUT', async () => {
    const driver = track(open(s3));
    s3.clearRequests();
    const big = Buffer.alloc(12 * MiB, 3);
    expect(await driver.put('big', Readable.from([big.subarray(0, 6 * MiB), big.subarray(6 * MiB)]))).toEqual({ size: 12 * MiB });
    const requests = s3.requests().filter((r) => r.url.includes('/big'));
    expect(requests.filter((r) => r.method === 'PUT' && r.url.includes('partNumber='))).toHaveLength(3); // 5 + 5 + 2 MiB
    expect(requests.filter((r) => r.method === 'POST' && r.url.includes('uploadId='))).toHaveLength(1);
    expect((await readAll(await driver.get('big'))).equals(big)).toBe(true);

    s3.clearRequests();
    await driver.put('small', Buffer.alloc(MiB, 1));
    expect(s3.requests().filter((r) => r.url.includes('/small')).map((r) => r.method)).toEqual(['PUT']);
  });

  it('aborts the multipart upload when the body fails after some parts', async () => {
    const driver = track(open(s3));
    s3.clearRequests();
    async function* failing() {
      for (let i = 0; i < 12; i++) yield Buffer.alloc(MiB, i);
      throw new Error('source died');
    }
    await expect(driver.put('broken', Readable.from(failing()))).rejects.toThrow('source died');
    const requests = s3.requests().filter((r) => r.url.includes('/broken'));
    expect(requests.some((r) => r.method === 'PUT' && r.url.includes('partNumber='))).toBe(true);
    expect(requests.some((r) => r.method === 'DELETE' && r.url.includes('uploadId='))).toBe(true);
    expect(await driver.stat('broken')).toBeUndefined();
  });

  it('reads ranges with explicit first-last byte positions, never suffix ranges', async () => {
    const driver = track(open(s3));
    const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    await driver.put('r', body);
    s3.clearRequests();
    expect(await readAll(await driver.get('r', { offset: 990 }))).toEqual(body.subarray(990));
    expect(await readAll(await driver.get('r', { offset: 10, length: 5 }))).toEqual(body.subarray(10, 15));
    expect(await readAll(await driver.get('r', { offset: 1000 }))).toEqual(Buffer.alloc(0));
    expect(await readAll(await driver.get('r', { offset: 5, length: 0 }))).toEqual(Buffer.alloc(0));
    const ranges = s3.requests().filter((r) => r.method === 'GET').map((r) => r.headers.range);
    expect(ranges.slice(0, 2)).toEqual(['bytes=990-', 'bytes=10-14']);
    expect(ranges.every((range) => !range?.startsWith('bytes=-'))).toBe(true);
  });

  it('lists across pages (more than 1000 keys) and deletes a prefix in batches', async () => {
    const driver = track(open(s3));
    const keys = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((key) => driver.put(key, 'x')));
    s3.clearRequests();
    const listed: string[] = [];
    for await (const info of driver.list('many/')) listed.push(info.key);
    expect(listed.sort()).toEqual(keys);
    expect(s3.requests().filter((r) => r.method === 'GET' && r.url.includes('list-type=2'))).toHaveLength(2);

    await driver.put('many-other', 'x');
    s3.clearRequests();
    await driver.deletePrefix('many/');
    expect(s3.requests().filter((r) => r.method === 'POST' && r.url.includes('delete'))).toHaveLength(2);
    const after: string[] = [];
    for await (const info of driver.list('')) after.push(info.key);
    expect(after).toEqual(['many-other']);
    await expect(driver.deletePrefix('many')).rejects.toThrow(/must name a directory/);
  });

  it('keeps repositories with different prefixes apart', async () => {
    const a = track(open(s3, { prefix: 'shared/a' }));
    const b = track(open(s3, { prefix: '/shared/ab/' }));
    await a.put('k', 'in a');
    await b.put('k', 'in b');
    expect((await readAll(await a.get('k'))).toString()).toBe('in a');
    const inA: string[] = [];
    for await (const info of a.list('')) inA.push(info.key);
    expect(inA).toEqual(['k']);
    expect(a.location).toBe(`s3://${BUCKET}/shared/a/ at ${new URL(s3.endpoint).host}`);
    await a.delete('k');
    await b.delete('k');
  });

  it('sends storage class and server-side encryption with every write', async () => {
    const driver = track(open(s3, { storage_class: 'STANDARD_IA', server_side_encryption: 'AES256' }));
    s3.clearRequests();
    await driver.put('sse', 'x');
    await driver.put('sse-big', Readable.from([Buffer.alloc(6 * MiB)]));
    const isPut = (r: { method: string; url: string }) => r.method === 'PUT' && !r.url.includes('partNumber=');
    const isCreateMultipart = (r: { method: string; url: string }) => r.method === 'POST' && /[?&]uploads\b/.test(r.url);
    const writes = s3.requests().filter((r) => isPut(r) || isCreateMultipart(r));
    expect(writes.length).toBeGreaterThanOrEqual(2);
    for (const write of writes) {
      expect(write.headers['x-amz-storage-class']).toBe('STANDARD_IA');
      expect(write.headers['x-amz-server-side-encryption']).toBe('AES256');
    }
  });

  describe('create-only puts', () => {
    it('use If-None-Match when the store honours it (probed once, no warning)', async () => {
      const logger = captureLogger();
      const driver = track(open(s3, {}, logger));
      s3.clearRequests();
      await driver.put('wal/1', 'one', { ifNotExists: true });
      await driver.put('wal/2', Readable.from([Buffer.alloc(7 * MiB)]), { ifNotExists: true });
      await expect(driver.put('wal/1', 'again', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
      const conditional = s3.requests().filter((r) => r.headers['if-none-match'] === '*');
      // probe, wal/1, the completion of wal/2's multipart upload
      expect(conditional.map((r) => `${r.method} ${r.status}`)).toEqual(['PUT 412', 'PUT 200', 'POST 200']);
      expect(logger.lines.filter((l) => l.startsWith('warn'))).toEqual([]);
    });

    it('turn into the store refusing a racing writer (412 → StorageConflictError)', async () => {
      const driver = track(open(s3, { conditional_put: 'on' }));
      // Skip the early HEAD, as a writer racing between HEAD and PUT would.
      driver.stat = async () => undefined;
      await driver.put('lock', 'first', { ifNotExists: true });
      await expect(driver.put('lock', 'second', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
      await expect(driver.put('lock', Readable.from([Buffer.alloc(6 * MiB)]), { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
      const reader = track(open(s3, { prefix: driver.root }));
      expect((await readAll(await reader.get('lock'))).toString()).toBe('first');
    });

    it('fall back to HEAD then PUT, with a warning, on a store that ignores If-None-Match', async () => {
      const logger = captureLogger();
      const driver = track(open(plain, {}, logger));
      await driver.put('wal/1', 'one', { ifNotExists: true });
      await driver.put('wal/2', 'two', { ifNotExists: true });
      await expect(driver.put('wal/1', 'again', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
      expect((await readAll(await driver.get('wal/1'))).toString()).toBe('one');
      const warnings = logger.lines.filter((l) => l.startsWith('warn'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/ignores If-None-Match.*best effort \(HEAD, then PUT\)/);
      // The probe object is gone.
      const keys: string[] = [];
      for await (const info of driver.list('')) keys.push(info.key);
      expect(keys.sort()).toEqual(['wal/1', 'wal/2']);
    });

    it('with conditional_put: off, never send If-None-Match', async () => {
      const logger = captureLogger();
      const driver = track(open(s3, { conditional_put: 'off' }, logger));
      s3.clearRequests();
      await driver.put('x', 'x', { ifNotExists: true });
      expect(s3.requests().some((r) => r.headers['if-none-match'])).toBe(false);
      expect(logger.lines.join('\n')).toMatch(/conditional_put: off/);
    });
  });

  describe('TLS', () => {
    let tls: SandboxS3Server;
    beforeAll(async () => {
      tls = await startS3Server({ tls: true, buckets: [BUCKET] });
    });
    afterAll(async () => tls?.destroy());

    it('verifies the certificate by default and says what to do', async () => {
      const driver = track(open(tls, { max_attempts: 1 }));
      const error = await driver.put('x', 'x').catch((e: unknown) => e as Error & { hint?: string });
      expect(error).toBeInstanceOf(Error);
      expect(error!.message).toContain(`s3 repository s3://${BUCKET}/`);
      expect(error!.message).toMatch(/self[- ]signed/i);
      expect(error!.hint).toMatch(/ca_file/);
    });

    it('trusts the CA given in ca_file', async () => {
      const logger = captureLogger();
      const driver = track(open(tls, { ca_file: tls.caFile }, logger));
      await driver.put('x', 'over TLS');
      expect((await readAll(await driver.get('x'))).toString()).toBe('over TLS');
      expect(logger.lines).toEqual([]);
    });

    it('skips verification only when told, with a warning', async () => {
      const logger = captureLogger();
      const driver = track(open(tls, { verify_tls: false }, logger));
      await driver.put('x', 'unverified');
      expect(logger.lines).toEqual([expect.stringMatching(/^warn: .*TLS certificate verification is OFF/)]);
    });
  });

  describe('credentials', () => {
    it('reads keys from files and never shows them', async () => {
      const dir = path.dirname(s3.directory);
      await writeFile(path.join(dir, 'key-id'), `${s3.accessKeyId}\n`, { mode: 0o600 });
      await writeFile(path.join(dir, 'secret'), `${s3.secretAccessKey}\n`, { mode: 0o600 });
      const driver = track(
        createS3Storage(
          { ...options(s3), access_key_id: { from_file: 'key-id' }, secret_access_key: { from_file: 'secret' } },
          { logger: captureLogger(), configDir: dir },
        ),
      );
      await driver.put('x', 'x');
      expect(driver.location).not.toContain(s3.secretAccessKey);
      expect(redact(`key ${s3.accessKeyId} secret ${s3.secretAccessKey}`)).toBe('key <redacted> secret <redacted>');
    });

    it('takes the environment (AWS credential chain) when the config names no keys', async () => {
      const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
      process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
      try {
        const { access_key_id: _a, secret_access_key: _s, ...rest } = options(s3);
        const driver = track(createS3Storage(rest, { logger: captureLogger(), configDir: '/' }));
        await driver.put('from-env', 'x');
        expect((await driver.stat('from-env'))?.size).toBe(1);
      } finally {
        process.env.AWS_ACCESS_KEY_ID = saved.id;
        process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
        if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
        if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      }
    });

    it('reports unknown credentials with a hint, without the keys', async () => {
      // s3rver checks the key id, not SigV4 signatures: use an unknown id.
      const wrongId = `WRONG${randomBytes(8).toString('hex').toUpperCase()}`;
      process.env.PGH_TEST_WRONG_ID = wrongId;
      const driver = track(open(s3, { access_key_id: { from_env: 'PGH_TEST_WRONG_ID' } }));
      const error = (await driver.put('x', 'x').catch((e: unknown) => e)) as Error & { hint?: string };
      expect(error.message).toMatch(/InvalidAccessKeyId/);
      expect(error.hint).toMatch(/check the credentials/);
      const shown = redact(`${error.message} ${error.hint} ${error.stack}`);
      expect(shown).not.toContain(wrongId);
      expect(shown).not.toContain(s3.secretAccessKey);
    });

    it('refuses half a key pair', () => {
      expect(() => open(s3, { secret_access_key: undefined })).toThrow(/access_key_id and secret_access_key go together/);
    });
  });

  it('retries throttling (503 SlowDown) and 500s with backoff, for single PUTs, parts and reads', async () => {
    const driver = track(open(s3));
    s3.clearRequests();
    s3.failNext(2);
    await driver.put('retried', 'x');
    expect(s3.requests().filter((r) => r.url.includes('/retried')).map((r) => `${r.method} ${r.status}`)).toEqual(['PUT 503', 'PUT 503', 'PUT 200']);

    s3.clearRequests();
    s3.failNext(1, { status: 500, code: 'InternalError' });
    await driver.put('retried-big', Readable.from([Buffer.alloc(11 * MiB, 1)]));
    expect(s3.requests().filter((r) => r.status >= 500)).toHaveLength(1);
    expect((await driver.stat('retried-big'))?.size).toBe(11 * MiB);

    s3.failNext(2);
    expect((await readAll(await driver.get('retried'))).toString()).toBe('x');
  });

  it('gives up after max_attempts, naming the store\'s error', async () => {
    const driver = track(open(s3, { max_attempts: 2 }));
    s3.failNext(2);
    const error = (await driver.put('never', 'x').catch((e: unknown) => e)) as Error & { hint?: string };
    expect(error.message).toMatch(/cannot write object "never": .*\(SlowDown, HTTP 503\)/);
    expect(error.hint).toMatch(/failed after retries/);
    s3.failNext(0);
  });

  it('names the repository and the cause when the store is down', async () => {
    const down = await startS3Server({ buckets: [BUCKET] });
    const driver = track(open(down, { max_attempts: 2 }));
    await driver.put('x', 'x');
    await down.stop();
    try {
      const error = (await driver.put('y', Readable.from([Buffer.alloc(100)])).catch((e: unknown) => e)) as Error & { hint?: string };
      expect(error.message).toMatch(new RegExp(`^s3 repository s3://${BUCKET}/.*: cannot write object "y": .*ECONNREFUSED`));
      expect(error.hint).toMatch(/cannot be reached/);
      await down.start();
      expect((await driver.stat('x'))?.size).toBe(1); // and works again once it is back
    } finally {
      await down.destroy();
    }
  });

  it('parses part sizes and rejects parts below 5 MiB', () => {
    expect(parsePartSize('16MiB')).toBe(16 * MiB);
    expect(parsePartSize('8M')).toBe(8 * MiB);
    expect(parsePartSize(6 * MiB)).toBe(6 * MiB);
    expect(parsePartSize(undefined)).toBe(8 * MiB);
    expect(() => parsePartSize('1MiB')).toThrow(/minimum of 5 MiB/);
    expect(() => parsePartSize('lots')).toThrow(/not a size/);
  });

  it('registers the "s3" storage type through the plugin', async () => {
    const registered = new Map<string, { schema: unknown; create: (options: unknown, context: unknown) => Promise<S3Storage> }>();
    plugin.apply({ storage: { register: (type: string, entry: never) => registered.set(type, entry) } } as never);
    expect(registered.get('s3')?.schema).toBe(s3StorageSchema);
    const driver = track(await registered.get('s3')!.create(options(s3), { logger: captureLogger(), configDir: '/' }));
    expect(driver.type).toBe('s3');
  });
});
