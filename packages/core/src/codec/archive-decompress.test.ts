import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decompressArchiveStream, type ArchiveCompression } from './archive-decompress.js';

/** 3 MiB of text-like data with long-distance repeats (so linked LZ4 blocks refer back across blocks). */
function sample(): Buffer {
  const words = Array.from({ length: 500 }, () => randomBytes(6).toString('hex'));
  const parts: string[] = [];
  for (let i = 0, length = 0; length < 3 * 1024 * 1024; i++) {
    parts.push(words[(i * 7919) % words.length], ' ');
    length += 13;
  }
  return Buffer.from(parts.join(''));
}

async function decode(compressed: Buffer, algorithm: ArchiveCompression, chunk: number): Promise<Buffer> {
  async function* pieces() {
    for (let at = 0; at < compressed.length; at += chunk) yield compressed.subarray(at, at + chunk);
  }
  const out: Buffer[] = [];
  for await (const part of decompressArchiveStream(pieces(), algorithm)) out.push(Buffer.from(part));
  return Buffer.concat(out);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('decompressing a whole archive stream (server-side compression)', () => {
  const data = sample();
  // The command-line tools write what liblz4 / libzstd / zlib write for PostgreSQL: one frame for the whole stream.
  const cases: [string, ArchiveCompression, string[]][] = [
    ['lz4, linked blocks, content checksum', 'lz4', ['lz4', '-BD', '-B4', '--content-size', '-c']],
    ['lz4, independent 64 KiB blocks with block checksums', 'lz4', ['lz4', '-B4', '-BX', '-c']],
    ['zstd', 'zstd', ['zstd', '-3', '-c']],
    ['gzip', 'gzip', ['gzip', '-c']],
  ];
  it.each(cases)('%s: the same bytes whatever the chunking', async (_what, algorithm, command) => {
    const compressed = execFileSync(command[0], command.slice(1), { input: data, maxBuffer: 64 << 20 });
    for (const chunk of [1 << 20, 32 * 1024 + 1, 333]) expect(sha(await decode(compressed, algorithm, chunk))).toBe(sha(data));
  });

  it('a damaged or truncated stream fails, never decodes to other bytes silently', async () => {
    const lz4 = execFileSync('lz4', ['-BD', '-BX', '-c'], { input: data });
    const damaged = Buffer.from(lz4);
    damaged[damaged.length >> 1] ^= 0xff;
    await expect(decode(damaged, 'lz4', 65536)).rejects.toThrow(/lz4 block/);
    await expect(decode(lz4.subarray(0, lz4.length - 100), 'lz4', 65536)).rejects.toThrow(/ends inside/);
    const zstd = execFileSync('zstd', ['-3', '-c'], { input: data });
    await expect(decode(zstd.subarray(0, zstd.length - 100), 'zstd', 65536)).rejects.toThrow(/ends in the middle of a frame/);
  });

  it('a zstd frame asking for a window over 8 MiB is refused before it is allocated', async () => {
    const wide = execFileSync('zstd', ['--ultra', '-22', '--long=27', '-c'], { input: Buffer.concat([data, data, data, data]), maxBuffer: 64 << 20 });
    await expect(decode(wide, 'zstd', 65536)).rejects.toThrow(/window larger than 8388608/);
  });

  it('a bomb costs time, not memory: output is produced as it is read', async () => {
    const bomb = execFileSync('zstd', ['-19', '-c'], { input: Buffer.alloc(256 << 20) });
    expect(bomb.length).toBeLessThan(64 * 1024);
    const before = process.memoryUsage().rss;
    let total = 0;
    let peak = 0;
    for await (const part of decompressArchiveStream((async function* () { yield bomb; })(), 'zstd')) {
      total += part.length;
      peak = Math.max(peak, part.length);
      if (total > 64 << 20) break; // a consumer with a limit stops early
    }
    expect(peak).toBeLessThanOrEqual(128 * 1024 + 512);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 << 20);
  });
});
