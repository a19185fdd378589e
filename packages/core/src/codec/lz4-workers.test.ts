import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeLz4Frame } from './lz4-decode.js';
import { Lz4WorkerPool, defaultWorkerCount } from './lz4-workers.js';

// The worker runs compiled code: the build's dist/codec/lz4-worker.js (`npm test` builds first).
const workerFile = fileURLToPath(new URL('../../dist/codec/lz4-worker.js', import.meta.url));

function text(size: number, seed: number): Buffer {
  return Buffer.from(`row ${seed} of pgbench_accounts, filler `.repeat(Math.ceil(size / 30)).slice(0, size), 'latin1');
}

describe('lz4 worker pool', () => {
  let pool: Lz4WorkerPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('compresses in workers, in shared frames and in copies, many blocks in flight, each decoding to its input', async () => {
    expect(existsSync(workerFile)).toBe(true);
    pool = new Lz4WorkerPool(workerFile, 2, 0);
    const inputs = Array.from({ length: 24 }, (_, i) => (i % 3 === 2 ? randomBytes(200_000 + i) : text(1024 * 1024 - i * 1000, i)));
    const frames = inputs.map((input, i) => {
      if (i % 2) return pool!.compress(input); // copied into a slot
      const frame = pool!.newFrame(input.length); // compressed where it lies
      input.copy(frame);
      return pool!.compress(frame);
    });
    const out = await Promise.all(frames);
    out.forEach((frame, i) => expect(decodeLz4Frame(frame).equals(inputs[i])).toBe(true));
    expect(out[2].length).toBe(inputs[2].length + 15); // random: stored as it is (header 7, block size 4, end mark 4)
  });

  it('starts no worker on two cores or fewer, one or two from three on', () => {
    expect([1, 2, 3, 4, 16].map((cores) => defaultWorkerCount(cores))).toEqual([0, 0, 2, 2, 2]);
  });

  it('with no worker wanted, compresses every block on the calling thread, in plain buffers', async () => {
    pool = new Lz4WorkerPool(workerFile, 0, 0);
    const inputs = [text(1024 * 1024, 7), randomBytes(300_000)];
    const frame = pool.newFrame(inputs[0].length);
    expect(frame.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    inputs[0].copy(frame);
    const out = await Promise.all([pool.compress(frame), pool.compress(inputs[1])]);
    out.forEach((compressed, i) => expect(decodeLz4Frame(compressed).equals(inputs[i])).toBe(true));
    expect((pool as unknown as { workers: unknown[] }).workers).toHaveLength(0);
  });

  it('with no worker wanted, a long stream skips the short-job path from its first block', async () => {
    let shortJobs = 0;
    pool = new Lz4WorkerPool(workerFile, 0, 32 * 1024 * 1024, async (block) => {
      shortJobs++;
      return Buffer.from(block);
    });
    const input = text(500_000, 8);
    expect(decodeLz4Frame(await pool.compress(input, true)).equals(input)).toBe(true);
    expect(shortJobs).toBe(0);
    await pool.compress(input); // a WAL segment's block: the short-job path
    expect(shortJobs).toBe(1);
  });

  it('compresses on the calling thread until enough was compressed, and when there is no worker file', async () => {
    pool = new Lz4WorkerPool(undefined, 1, 0);
    const input = text(300_000, 1);
    expect(decodeLz4Frame(await pool.compress(input)).equals(input)).toBe(true);
  });

  it('a worker that cannot start: every block still compresses, on the calling thread', async () => {
    pool = new Lz4WorkerPool('/nonexistent/lz4-worker.js', 1, 0);
    const inputs = [text(400_000, 5), text(500_000, 6)];
    const out = await Promise.all(inputs.map((input) => pool!.compress(input)));
    out.forEach((frame, i) => expect(decodeLz4Frame(frame).equals(inputs[i])).toBe(true));
  });

  it('a worker that dies: its blocks and every later one compress on the calling thread', async () => {
    pool = new Lz4WorkerPool(workerFile, 1, 0);
    const first = text(500_000, 2);
    expect(decodeLz4Frame(await pool.compress(first)).equals(first)).toBe(true);
    const inFlight = pool.compress(text(600_000, 3));
    // Kill the worker under the job (tests only reach in like this).
    const workers = (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    await workers[0].terminate();
    expect(decodeLz4Frame(await inFlight).equals(text(600_000, 3))).toBe(true);
    const after = text(700_000, 4);
    expect(decodeLz4Frame(await pool.compress(after)).equals(after)).toBe(true);
  });
});
