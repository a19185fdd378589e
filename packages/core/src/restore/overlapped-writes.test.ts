import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OverlappedWrites } from './overlapped-writes.js';

const dir = await mkdtemp(path.join(tmpdir(), 'pgharbor-overlapped-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('OverlappedWrites', () => {
  it('writes every chunk at its place, whatever order the writes finish in', async () => {
    const file = path.join(dir, 'out');
    const handle = await open(file, 'wx');
    const writes = new OverlappedWrites(handle);
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(((i * 7919) % 600_000) + 1, i));
    for (const chunk of chunks) await writes.write(chunk);
    await writes.drain();
    await handle.close();
    expect((await readFile(file)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('tells of every chunk once its write is over', async () => {
    const file = path.join(dir, 'released');
    const handle = await open(file, 'wx');
    const released: Buffer[] = [];
    const writes = new OverlappedWrites(handle, (chunk) => released.push(chunk));
    const chunks = Array.from({ length: 600 }, (_, i) => Buffer.alloc(1000, i));
    for (const chunk of chunks) await writes.write(chunk);
    await writes.drain();
    await handle.close();
    expect(released).toHaveLength(chunks.length);
    expect(new Set(released)).toEqual(new Set(chunks));
    expect((await readFile(file)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('reports a failed write', async () => {
    const file = path.join(dir, 'read-only');
    await (await open(file, 'w')).close();
    const handle = await open(file, 'r'); // writes fail with EBADF
    const writes = new OverlappedWrites(handle);
    const outcome = (async () => {
      await writes.write(Buffer.from('x'));
      await writes.drain();
    })();
    await expect(outcome).rejects.toMatchObject({ code: 'EBADF' });
    await writes.settle();
    await handle.close();
  });
});
