import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StorageDriver, StorageObjectInfo } from '../storage/storage-driver.js';
import { memoryProbe } from './memory-probe.js';
import { acquireLock, type HeldLock } from '../lock/lock.js';

export interface ConformanceOptions {
  /** Create a fresh, empty driver instance for one test (each test gets its own root/prefix). */
  create(): Promise<StorageDriver>;
  /** Optional cleanup after each test; called before the driver's close(). */
  destroy?(driver: StorageDriver): Promise<void>;
  /** Size of the "large object" test; default 64 MiB. */
  largeObjectBytes?: number;
  /**
   * Memory (Buffers/ArrayBuffers) a driver may hold at once while putting or
   * getting the large object; default 32 MiB. Only checked when the large
   * object is at least twice this size.
   */
  memoryBudgetBytes?: number;
  /**
   * Another instance of the driver on the same store as `driver` (its own
   * connections, its own state), as a second process would have. The lock
   * tests race such instances; without it they race one instance.
   */
  reopen?(driver: StorageDriver): Promise<StorageDriver>;
}

const MiB = 1024 * 1024;
/** Slow tests (many objects, large objects) on remote stores need room. */
const SLOW = 300_000;

/**
 * The storage conformance suite: every storage driver (posix, S3, SFTP, a
 * user's in-house store) must pass it. It checks what backups rely on:
 * atomic, durable, create-only puts; ranged gets; prefix listing; and
 * streaming in bounded memory.
 *
 * ```ts
 * describeStorageConformance('my-store', { create: async () => new MyStore({ prefix: randomPrefix() }) });
 * ```
 */
export function describeStorageConformance(name: string, options: ConformanceOptions): void {
  const largeObjectBytes = options.largeObjectBytes ?? 64 * MiB;
  const memoryBudgetBytes = options.memoryBudgetBytes ?? 32 * MiB;

  describe(`storage conformance: ${name}`, () => {
    let driver: StorageDriver;

    beforeEach(async () => {
      driver = await options.create();
    });

    afterEach(async () => {
      if (!driver) return;
      try {
        await options.destroy?.(driver);
      } finally {
        await driver.close();
      }
    });

    describe('put and get', () => {
      it('describes itself with a type and a location', () => {
        expect(typeof driver.type).toBe('string');
        expect(driver.type.length).toBeGreaterThan(0);
        expect(typeof driver.location).toBe('string');
        expect(driver.location.length).toBeGreaterThan(0);
      });

      it('round-trips a Buffer body', async () => {
        const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
        expect(await driver.put('dir/buffer.bin', body)).toEqual({ size: 3000 });
        expect(await readAll(await driver.get('dir/buffer.bin'))).toEqual(body);
      });

      it('round-trips a plain Uint8Array body', async () => {
        const body = new Uint8Array([0, 1, 2, 253, 254, 255]);
        expect(await driver.put('u8.bin', body)).toEqual({ size: 6 });
        expect(await readAll(await driver.get('u8.bin'))).toEqual(Buffer.from(body));
      });

      it('round-trips a string body as UTF-8', async () => {
        const body = 'backup_label: ünïcödé ✓\n';
        expect(await driver.put('a/b/c/label.txt', body)).toEqual({ size: Buffer.byteLength(body) });
        expect((await readAll(await driver.get('a/b/c/label.txt'))).toString('utf8')).toBe(body);
      });

      it('round-trips a Readable body', async () => {
        const chunks = [Buffer.from('first '), Buffer.alloc(100_000, 7), Buffer.from(' last')];
        const result = await driver.put('stream/object', Readable.from(chunks));
        expect(result).toEqual({ size: 100_011 });
        expect(await readAll(await driver.get('stream/object'))).toEqual(Buffer.concat(chunks));
      });

      it('round-trips an empty object', async () => {
        expect(await driver.put('empty', Buffer.alloc(0))).toEqual({ size: 0 });
        expect((await readAll(await driver.get('empty'))).length).toBe(0);
        expect((await driver.stat('empty'))?.size).toBe(0);
      });

      it('accepts keys with spaces, unicode and punctuation', async () => {
        const keys = ['with space/file name.txt', 'ünï/cödé', 'a+b=c/%20@1:2,3;~', 'x/..dots', 'x/-dash_'];
        for (const key of keys) await driver.put(key, key);
        for (const key of keys) expect((await readAll(await driver.get(key))).toString()).toBe(key);
        expect(await listKeys(driver, '')).toEqual([...keys].sort());
      });
    });

    describe('ranges', () => {
      const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));

      it('gets a byte range with offset and length', async () => {
        await driver.put('ranged', body);
        expect(await readAll(await driver.get('ranged', { offset: 100, length: 50 }))).toEqual(body.subarray(100, 150));
        expect(await readAll(await driver.get('ranged', { offset: 0, length: 1 }))).toEqual(body.subarray(0, 1));
        expect(await readAll(await driver.get('ranged', { offset: 990, length: 10 }))).toEqual(body.subarray(990));
        expect(await readAll(await driver.get('ranged', { offset: 0, length: 1000 }))).toEqual(body);
      });

      it('gets a byte range with only an offset (to the end)', async () => {
        await driver.put('ranged', body);
        expect(await readAll(await driver.get('ranged', { offset: 400 }))).toEqual(body.subarray(400));
        expect(await readAll(await driver.get('ranged', { offset: 0 }))).toEqual(body);
        expect(await readAll(await driver.get('ranged', { offset: 999 }))).toEqual(body.subarray(999));
      });
    });

    describe('stat', () => {
      it('gives the key, size and mtime of an object', async () => {
        const before = Date.now();
        await driver.put('stat/me', Buffer.alloc(1234, 1));
        const info = await driver.stat('stat/me');
        expect(info?.key).toBe('stat/me');
        expect(info?.size).toBe(1234);
        expect(info?.mtime).toBeInstanceOf(Date);
        // Generous window: remote stores use their own clock.
        expect(Math.abs(info!.mtime.getTime() - before)).toBeLessThan(10 * 60_000);
      });

      it('gives undefined for a missing key', async () => {
        expect(await driver.stat('missing')).toBeUndefined();
        expect(await driver.stat('missing/deeper/key')).toBeUndefined();
      });

      it('gives undefined for a key that is only a prefix of other keys', async () => {
        await driver.put('parent/child', 'x');
        expect(await driver.stat('parent')).toBeUndefined();
        await expectRejectsNamed(() => driver.get('parent'), 'StorageNotFoundError');
      });
    });

    describe('missing objects', () => {
      it('rejects get of a missing key with StorageNotFoundError', async () => {
        await expectRejectsNamed(() => driver.get('missing'), 'StorageNotFoundError');
        await expectRejectsNamed(() => driver.get('missing/deeper/key', { offset: 1, length: 2 }), 'StorageNotFoundError');
      });
    });

    describe('atomicity', () => {
      it('overwrite replaces the object', async () => {
        await driver.put('over', 'old content, longer than the new one');
        expect(await driver.put('over', 'new')).toEqual({ size: 3 });
        expect((await readAll(await driver.get('over'))).toString()).toBe('new');
        expect((await driver.stat('over'))?.size).toBe(3);
        expect(await listKeys(driver, '')).toEqual(['over']);
      });

      it('readers see the old object until a slow overwrite completes', async () => {
        await driver.put('over', 'old');
        const body = gatedBody([Buffer.from('new '), Buffer.from('content')]);
        const put = driver.put('over', body.stream);
        await body.inProgress();
        try {
          expect((await readAll(await driver.get('over'))).toString()).toBe('old');
          expect((await driver.stat('over'))?.size).toBe(3);
        } finally {
          body.release();
        }
        await put;
        expect((await readAll(await driver.get('over'))).toString()).toBe('new content');
      });

      it('a slow streamed put is invisible until it resolves, then visible whole', async () => {
        const chunks = [Buffer.alloc(64 * 1024, 1), Buffer.alloc(64 * 1024, 2), Buffer.alloc(1000, 3)];
        const body = gatedBody(chunks);
        const put = driver.put('slow/object', body.stream);
        await body.inProgress();
        try {
          expect(await driver.stat('slow/object')).toBeUndefined();
          await expectRejectsNamed(() => driver.get('slow/object'), 'StorageNotFoundError');
          expect(await listKeys(driver, '')).toEqual([]);
          expect(await listKeys(driver, 'slow/')).toEqual([]);
        } finally {
          body.release();
        }
        expect(await put).toEqual({ size: 132_072 });
        expect((await driver.stat('slow/object'))?.size).toBe(132_072);
        expect(await readAll(await driver.get('slow/object'))).toEqual(Buffer.concat(chunks));
        expect(await listInfos(driver, '')).toMatchObject([{ key: 'slow/object', size: 132_072 }]);
      });

      it('a put whose body fails half-way rejects and leaves nothing behind', async () => {
        const failure = new Error('source went away');
        await expect(driver.put('failed/object', failingBody(failure))).rejects.toThrow('source went away');
        expect(await driver.stat('failed/object')).toBeUndefined();
        await expectRejectsNamed(() => driver.get('failed/object'), 'StorageNotFoundError');
        expect(await listKeys(driver, '')).toEqual([]);
      });

      it('a failed overwrite leaves the old object in place', async () => {
        await driver.put('kept', 'old');
        await expect(driver.put('kept', failingBody(new Error('boom')))).rejects.toThrow('boom');
        expect((await readAll(await driver.get('kept'))).toString()).toBe('old');
        expect(await listKeys(driver, '')).toEqual(['kept']);
      });
    });

    describe('ifNotExists', () => {
      it('creates the object when it is absent', async () => {
        expect(await driver.put('wal/000000010000000000000001', 'segment', { ifNotExists: true })).toEqual({ size: 7 });
        expect((await readAll(await driver.get('wal/000000010000000000000001'))).toString()).toBe('segment');
      });

      it('rejects with StorageConflictError when present and keeps the old content', async () => {
        await driver.put('lock', 'first owner');
        await expectRejectsNamed(() => driver.put('lock', 'second owner', { ifNotExists: true }), 'StorageConflictError');
        await expectRejectsNamed(() => driver.put('lock', Readable.from([Buffer.from('third owner')]), { ifNotExists: true }), 'StorageConflictError');
        expect((await readAll(await driver.get('lock'))).toString()).toBe('first owner');
        expect(await listKeys(driver, '')).toEqual(['lock']);
      });

      it('lets exactly one of many concurrent create-only puts win', async () => {
        const writers = Array.from({ length: 20 }, (_, i) => `writer ${i}`);
        const results = await Promise.allSettled(writers.map((content) => driver.put('race/lock', content, { ifNotExists: true })));
        const winners = writers.filter((_, i) => results[i].status === 'fulfilled');
        expect(winners).toHaveLength(1);
        for (const result of results) {
          if (result.status === 'rejected') expect(errorName(result.reason)).toBe('StorageConflictError');
        }
        expect((await readAll(await driver.get('race/lock'))).toString()).toBe(winners[0]);
        expect(await listKeys(driver, '')).toEqual(['race/lock']);
      });
    });

    // What the lock (lock/lock.ts) needs: create-only puts that exactly one writer wins even from
    // separate instances (connections, processes), read-your-writes for the winner's bytes, and delete.
    describe('locking', () => {
      const TAKERS = 8;
      const ROUNDS = 4;
      const instances = async (): Promise<StorageDriver[]> => {
        const others = await Promise.all(Array.from({ length: TAKERS - 1 }, () => options.reopen?.(driver) ?? driver));
        return [driver, ...others];
      };
      const closeOthers = async (all: StorageDriver[]) => {
        for (const other of new Set(all)) if (other !== driver) await other.close();
      };

      it(`lets exactly one of ${TAKERS} create-only puts from separate instances win, every round`, async () => {
        const all = await instances();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            const key = `locks/round-${round}.lock`;
            const results = await Promise.allSettled(all.map((instance, i) => instance.put(key, `taker ${i}`, { ifNotExists: true })));
            const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
            expect(winners, `round ${round}`).toHaveLength(1);
            for (const result of results) if (result.status === 'rejected') expect(errorName(result.reason)).toBe('StorageConflictError');
            // Every instance reads the winner's bytes at once: the lock compares them before it deletes.
            for (const instance of all) expect((await readAll(await instance.get(key))).toString()).toBe(`taker ${winners[0]}`);
          }
        } finally {
          await closeOthers(all);
        }
      });

      it(`gives a dead holder's lock to exactly one of ${TAKERS} takers on separate instances, every round`, async () => {
        const all = await instances();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            const key = `locks/dead-${round}.lock`;
            const dead = spawnSync(process.execPath, ['-e', '0']).pid; // a pid of this host that no longer runs
            await driver.put(key, JSON.stringify({ token: `${round}`.padStart(32, 'd'), pid: dead, hostname: os.hostname(), operation: 'backup', since: new Date().toISOString() }));
            const results = await Promise.allSettled(all.map((instance) => acquireLock(instance, key, 'conformance')));
            const held = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
            expect(held, `round ${round}: ${results.map((r) => (r.status === 'rejected' ? errorMessageOf(r.reason) : 'won')).join(' | ')}`).toHaveLength(1);
            for (const result of results) if (result.status === 'rejected') expect(errorMessageOf(result.reason)).toMatch(/another (conformance|backup) of .* (is running|is being taken over)/);
            const stored = JSON.parse((await readAll(await driver.get(key))).toString()) as { token: string };
            expect(stored.token).toBe((held[0] as HeldLock).owner.token);
            expect(await held[0].release()).toBe(true);
            expect(await listKeys(driver, key)).toEqual([]); // no breaker left behind
          }
        } finally {
          await closeOthers(all);
        }
      });

      it('releases only its own lock', async () => {
        const mine = await acquireLock(driver, 'locks/own.lock', 'conformance');
        await driver.delete('locks/own.lock'); // removed by hand, then taken by someone else
        const theirs = await acquireLock(driver, 'locks/own.lock', 'conformance');
        expect(await mine.release()).toBe(false);
        expect(JSON.parse((await readAll(await driver.get('locks/own.lock'))).toString()).token).toBe(theirs.owner.token);
        expect(await theirs.release()).toBe(true);
      });
    });

    describe('concurrency', () => {
      it('lets 50 concurrent writers to different keys all succeed', async () => {
        const keys = Array.from({ length: 50 }, (_, i) => `parallel/${i % 5}/object-${i}`);
        await Promise.all(keys.map((key, i) => driver.put(key, i % 2 ? key : Readable.from([Buffer.from(key)]))));
        for (const key of keys) expect((await readAll(await driver.get(key))).toString()).toBe(key);
        expect(await listKeys(driver, 'parallel/')).toEqual([...keys].sort());
      });

      it('puts succeed while other objects in the same "directory" are deleted', async () => {
        for (let round = 0; round < 20; round++) {
          await driver.put(`churn/${round}/old`, 'old');
          await Promise.all([driver.delete(`churn/${round}/old`), driver.put(`churn/${round}/new`, 'new')]);
          expect((await readAll(await driver.get(`churn/${round}/new`))).toString()).toBe('new');
        }
        expect(await listKeys(driver, 'churn/')).toHaveLength(20);
      });
    });

    describe('list', () => {
      it(
        'lists by plain string prefix across many keys and nested "directories"',
        async () => {
          const keys = [
            ...Array.from({ length: 1000 }, (_, i) => `a/b/${i % 10}/obj-${i}`),
            ...Array.from({ length: 100 }, (_, i) => `a/bc/obj-${i}`),
            ...Array.from({ length: 50 }, (_, i) => `a/bcd-${i}`),
            ...Array.from({ length: 49 }, (_, i) => `x/y/z/obj-${i}`),
            'top-level',
          ];
          await forEachLimited(keys, 32, (key) => driver.put(key, key).then(() => undefined));

          const prefixes = ['', 'a', 'a/', 'a/b', 'a/b/', 'a/b/3', 'a/b/3/', 'a/b/3/obj-1', 'a/b/3/obj-13', 'a/bc', 'a/bc/', 'x/y/z/obj-4', 'top', 'nope', 'a/nope/'];
          for (const prefix of prefixes) {
            const infos = await listInfos(driver, prefix);
            const expected = keys.filter((key) => key.startsWith(prefix)).sort();
            expect(infos.map((info) => info.key), `list("${prefix}")`).toEqual(expected);
            for (const info of infos) {
              expect(info.size).toBe(Buffer.byteLength(info.key));
              expect(info.mtime).toBeInstanceOf(Date);
            }
          }
          expect((await listKeys(driver, 'a/b')).length).toBe(1150);
        },
        SLOW,
      );

      it('lists nothing in an empty store, and never outside it', async () => {
        expect(await listKeys(driver, '')).toEqual([]);
        await driver.put('inside', 'x');
        for (const prefix of ['../', '..', '/']) {
          // Drivers may reject such prefixes or list nothing; they must not escape.
          const keys = await listKeys(driver, prefix).catch(() => []);
          expect(keys, `list("${prefix}")`).toEqual([]);
        }
      });
    });

    describe('large objects', () => {
      it(
        `streams a ${formatBytes(largeObjectBytes)} object in and out in bounded memory`,
        async () => {
          const probe = largeObjectBytes >= 2 * memoryBudgetBytes ? memoryProbe() : undefined;
          const source = generatedBody(largeObjectBytes, (bytes) => probe?.observe(bytes));
          expect(await driver.put('large/object', source.stream)).toEqual({ size: largeObjectBytes });
          expect((await driver.stat('large/object'))?.size).toBe(largeObjectBytes);
          const putGrowth = probe?.peakGrowth();

          probe?.reset();
          const read = await hashStream(await driver.get('large/object'), (bytes) => probe?.observe(bytes));
          expect(read).toEqual({ size: largeObjectBytes, sha256: source.sha256() });
          const getGrowth = probe?.peakGrowth();

          if (probe) {
            expect(putGrowth, 'memory held at once during put').toBeLessThan(memoryBudgetBytes);
            expect(getGrowth, 'memory held at once during get').toBeLessThan(memoryBudgetBytes);
          }

          const tail = await readAll(await driver.get('large/object', { offset: largeObjectBytes - 10 }));
          expect(tail.length).toBe(10);
        },
        SLOW,
      );
    });

    describe('delete', () => {
      it('removes an object and leaves its neighbours', async () => {
        await driver.put('d/1', 'one');
        await driver.put('d/2', 'two');
        await driver.put('d/sub/3', 'three');
        await driver.delete('d/1');
        expect(await driver.stat('d/1')).toBeUndefined();
        await expectRejectsNamed(() => driver.get('d/1'), 'StorageNotFoundError');
        expect(await listKeys(driver, '')).toEqual(['d/2', 'd/sub/3']);

        await driver.delete('d/sub/3');
        await driver.delete('d/2');
        expect(await listKeys(driver, '')).toEqual([]);
        await driver.put('d/sub/3', 'again');
        expect((await readAll(await driver.get('d/sub/3'))).toString()).toBe('again');
      });

      it('resolves when the object is missing', async () => {
        await expect(driver.delete('missing')).resolves.toBeUndefined();
        await expect(driver.delete('missing/deeper/key')).resolves.toBeUndefined();
      });
    });

    describe('keys', () => {
      it.each(['../x', 'a/../../x', '/abs', 'a//b', '', 'a/./b', 'trailing/'])('rejects the invalid key "%s"', async (key) => {
        await expectRejects(() => driver.put(key, 'x'));
        await expectRejects(() => driver.put(key, 'x', { ifNotExists: true }));
        await expectRejects(() => driver.get(key));
        await expectRejects(() => driver.stat(key));
        await expectRejects(() => driver.delete(key));
        expect(await listKeys(driver, '')).toEqual([]);
      });
    });
  });
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function listInfos(driver: StorageDriver, prefix: string): Promise<StorageObjectInfo[]> {
  const infos: StorageObjectInfo[] = [];
  for await (const info of driver.list(prefix)) infos.push(info);
  const keys = infos.map((info) => info.key);
  expect(new Set(keys).size, `list("${prefix}") returns each key once`).toBe(keys.length);
  return infos.sort((a, b) => compare(a.key, b.key));
}

async function listKeys(driver: StorageDriver, prefix: string): Promise<string[]> {
  return (await listInfos(driver, prefix)).map((info) => info.key);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function errorMessageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** Calls `action` and expects it to throw or reject; a driver may do either. */
async function expectRejects(action: () => unknown): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  throw new Error(`expected ${action.toString()} to throw or reject`);
}

/** By name, not instanceof: a user's driver may bundle its own copy of the error classes. */
async function expectRejectsNamed(action: () => unknown, name: string): Promise<void> {
  const error = await expectRejects(action);
  expect(errorName(error), String(error)).toBe(name);
}

/**
 * A body that yields its first chunk, then waits for release(): while it
 * waits the put is provably in progress.
 */
function gatedBody(chunks: Buffer[]): { stream: Readable; inProgress(): Promise<void>; release(): void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const firstPulled = new Promise<void>((resolve) => (started = resolve));
  async function* generate(): AsyncGenerator<Buffer> {
    yield chunks[0];
    started();
    await released;
    yield* chunks.slice(1);
  }
  return {
    stream: Readable.from(generate(), { objectMode: false }),
    // Give the driver time to start writing what it has read.
    inProgress: () => firstPulled.then(() => sleep(200)),
    release,
  };
}

/** A body that yields some data with delays, then errors. */
function failingBody(error: Error): Readable {
  async function* generate(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(64 * 1024, 1);
    await sleep(20);
    yield Buffer.alloc(64 * 1024, 2);
    await sleep(20);
    throw error;
  }
  return Readable.from(generate(), { objectMode: false });
}

/**
 * `size` bytes of varied content, produced on demand (so a driver that does
 * not apply backpressure is not hidden by a fast producer), hashed as produced.
 * Every chunk is a fresh Buffer, so a driver that keeps chunks shows up in
 * the memory probe.
 */
function generatedBody(size: number, onChunk: (bytes: number) => void): { stream: Readable; sha256(): string } {
  const chunkSize = MiB;
  const pattern = Buffer.alloc(chunkSize + 65_536);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 2_654_435_761) >>> 24;
  const hash = createHash('sha256');
  let produced = 0;
  let index = 0;
  const stream = new Readable({
    read() {
      if (produced === size) {
        this.push(null);
        return;
      }
      const length = Math.min(chunkSize, size - produced);
      const offset = (index++ * 7919) % 65_536;
      const chunk = Buffer.from(pattern.subarray(offset, offset + length));
      hash.update(chunk);
      produced += length;
      onChunk(length);
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

async function hashStream(stream: Readable, onChunk: (bytes: number) => void): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Uint8Array);
    size += (chunk as Uint8Array).byteLength;
    onChunk((chunk as Uint8Array).byteLength);
  }
  return { size, sha256: hash.digest('hex') };
}

async function forEachLimited<T>(items: T[], limit: number, action: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  async function worker(): Promise<void> {
    while (next < items.length) await action(items[next++]);
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function formatBytes(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} byte`;
}
