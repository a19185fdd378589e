import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { FRAME_SIZE, MAX_STORED_FRAME, countDecoded } from './decode-bounds.js';
import { FrameSplitter } from './frames.js';
import { decodeLz4Frame } from './lz4-decode.js';
import { decodeStream, encodeBuffer } from './stream-codec.js';
import { decodeZstdFrame } from './zstd-decode.js';
import { gzipBomb, lz4BlockBomb, lz4FramesOf1MiB, zstdBlockBomb, zstdDeclaredBomb, zstdFramesOf1MiB, zstdRleBomb } from '../testing/decoding-bombs.js';

const MiB = 1024 * 1024;
const zstd = createRequire(import.meta.url)('@mongodb-js/zstd/bindings.js') as { compress(data: Buffer, level?: number): Promise<Buffer>; decompress(data: Buffer): Promise<Buffer> };

async function* chunked(data: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of source) parts.push(part);
  return Buffer.concat(parts);
}

/** Decompress calls counted, and the most any returned: what the bounded zstd decoder let libzstd produce. */
function countingZstd() {
  const seen = { calls: 0, largest: 0 };
  const decompress = async (frame: Buffer) => {
    const out = await zstd.decompress(frame);
    seen.calls++;
    seen.largest = Math.max(seen.largest, out.length);
    return out;
  };
  return { seen, decompress };
}

/** A zstd compressed block of `size` bytes of one value (RLE literals, no sequences). */
function literalRun(size: number, last: boolean): Buffer {
  const body = [1 | (3 << 2) | ((size & 15) << 4), (size >> 4) & 255, size >> 12, 0x42, 0];
  const header = (last ? 1 : 0) | (2 << 1) | (body.length << 3);
  return Buffer.from([header & 255, (header >> 8) & 255, header >> 16, ...body]);
}

describe('the splitter walks each frame once, however its bytes arrive', () => {
  it('cuts the same frames at every chunk size, for zstd and lz4', async () => {
    const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(MiB, 7), Buffer.from('pgbench_accounts row '.repeat(20_000))]);
    for (const kind of ['zstd', 'lz4'] as const) {
      const stored = await encodeBuffer(data, kind, 1, undefined);
      for (const size of [7, 4096, 65_536, stored.length]) {
        const splitter = new FrameSplitter(kind);
        const frames: Buffer[] = [];
        for (let at = 0; at < stored.length; at += size) frames.push(...splitter.push(stored.subarray(at, at + size)));
        splitter.end();
        expect(frames.length).toBe(Math.ceil(data.length / FRAME_SIZE));
        expect(Buffer.concat(frames).equals(stored)).toBe(true);
      }
    }
  });
});

describe('zstd frames are decoded within bounds, whatever their blocks say', () => {
  it('pgharbor frames at levels 1, 3 and 19 decode in one pass (one call to libzstd)', async () => {
    const text = Buffer.alloc(MiB);
    for (let i = 0; i < text.length; i += 64) text.write(`row ${i} ${(i * 2654435761) % 1000} payload\n`, i);
    const binary = Buffer.concat([randomBytes(200_000), text.subarray(0, MiB - 200_000)]);
    for (const [level, data] of [[1, text], [1, binary], [3, binary], [19, binary]] as const) {
      {
        const { seen, decompress } = countingZstd();
        expect((await decodeZstdFrame(await zstd.compress(data, level), FRAME_SIZE, decompress)).equals(data)).toBe(true);
        expect(seen.calls).toBe(1);
      }
    }
  });

  it('a frame of blocks that could produce more than a pass may is decoded in passes, each within the budget, to the right bytes', async () => {
    // 200 compressed blocks of 1,000 bytes: 200 KB, but 25 MiB as far as their headers tell.
    const blocks = Array.from({ length: 200 }, (_, i) => literalRun(1000, i === 199));
    const expected = Buffer.alloc(200_000, 0x42);
    const plain = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3]), ...blocks]);
    // The same with a content size, single segment (its window is its content size: rewritten for the passes).
    const sized = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x80 | 0x20]), Buffer.from([0x40, 0x0d, 0x03, 0x00]), ...blocks]);
    for (const frame of [plain, sized]) {
      const { seen, decompress } = countingZstd();
      expect((await decodeZstdFrame(frame, FRAME_SIZE, decompress)).equals(expected)).toBe(true);
      expect(seen.calls).toBeGreaterThan(1);
      expect(seen.largest).toBeLessThanOrEqual(FRAME_SIZE);
    }
  });

  it('a frame of compressed blocks decoding to 2.5 GiB is refused after decoding at most 8 MiB of it', async () => {
    const bomb = zstdBlockBomb(2560 * MiB);
    expect(bomb.length).toBeLessThan(200_000);
    expect(new FrameSplitter('zstd').push(bomb)).toHaveLength(1); // its headers say nothing of its size
    const { seen, decompress } = countingZstd();
    await expect(decodeZstdFrame(bomb, FRAME_SIZE, decompress)).rejects.toThrow('has a zstd frame that decodes to more than 1048576 bytes (pgharbor writes at most 1 MiB per frame)');
    expect(seen.largest).toBeLessThanOrEqual(8 * MiB);
  });

  it('a frame of blocks that decode to nothing stops after a bounded number of passes', async () => {
    const empty = Buffer.from([2 << 1 | (2 << 3), 0, 0, 0, 0]); // a compressed block: no literals, no sequences
    const last = Buffer.from([1 | (2 << 1) | (2 << 3), 0, 0, 0, 0]);
    const frame = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3]), ...Array.from({ length: 20_000 }, () => empty), last]);
    const { seen, decompress } = countingZstd();
    await expect(decodeZstdFrame(frame, FRAME_SIZE, decompress)).rejects.toThrow(/too many to check piece by piece/);
    expect(seen.calls).toBeLessThanOrEqual(33);
  });

  it('the splitter refuses what headers tell before anything is decoded: declared content, RLE blocks, frames stored in more than a frame needs', () => {
    expect(() => new FrameSplitter('zstd').push(zstdDeclaredBomb(2 ** 31))).toThrow('has a zstd frame that declares 2147483648 bytes of content, more than 1048576');
    expect(() => new FrameSplitter('zstd').push(zstdRleBomb(64 * MiB))).toThrow('has a zstd frame that decodes to more than 1048576 bytes');
    // A block header announcing 2 MiB: refused at its header, nothing more buffered.
    const splitter = new FrameSplitter('zstd');
    const huge = (2 << 1) | (((1 << 21) - 1) << 3);
    expect(() => splitter.push(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3, huge & 255, (huge >> 8) & 255, huge >> 16]))).toThrow(`has a zstd frame stored in more than ${MAX_STORED_FRAME} bytes`);
    const lz4 = new FrameSplitter('lz4');
    expect(() => lz4.push(lz4BlockBomb(256).subarray(0, 2 * MiB))).toThrow(`has an lz4 frame stored in more than ${MAX_STORED_FRAME} bytes`);
  });

  it('skippable frames are dropped, and bounded like any frame', () => {
    const skippable = (size: number) => Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from(new Uint32Array([size]).buffer), Buffer.alloc(Math.min(size, 16))]);
    const frames = zstdFramesOf1MiB(1);
    expect(new FrameSplitter('zstd').push(Buffer.concat([skippable(16), frames]))).toEqual([frames]);
    expect(() => new FrameSplitter('zstd').push(skippable(2 ** 31))).toThrow(/stored in more than/);
  });
});

describe('lz4 frames are decoded within bounds', () => {
  it('a block decoding to 4 MiB stops at the limit: the pooled 1 MiB buffer is all it gets', () => {
    const frame = lz4BlockBomb(1);
    expect(decodeLz4Frame(frame).length).toBe(4 * MiB); // without a limit: the format allows it
    expect(() => decodeLz4Frame(frame, FRAME_SIZE)).toThrow('has an lz4 frame that decodes to more than 1048576 bytes (pgharbor writes at most 1 MiB per frame)');
  });

  it('a declared content size or stored blocks past the limit are refused before decoding', () => {
    const sized = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x68, 0x70, 0, 0, 0, 0, 1, 0, 0, 0, 0]); // content size 2^32 (header checksum not needed by the splitter)
    expect(() => new FrameSplitter('lz4').push(sized)).toThrow('has an lz4 frame that declares 4294967296 bytes of content, more than 1048576');
    const stored = Buffer.alloc(4 + 512 * 1024);
    stored.writeUInt32LE(512 * 1024 + 0x80000000); // a block stored as it is
    const frame = Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]), stored, stored, stored]);
    expect(() => new FrameSplitter('lz4').push(frame)).toThrow('has an lz4 frame that decodes to more than 1048576 bytes');
  });
});

describe('an object decodes to its expected size, no more, no less', () => {
  const data = randomBytes(3 * MiB + 4321);
  for (const compression of ['none', 'gzip', 'lz4', 'zstd'] as const) {
    it(`${compression}: exact size passes; one byte less or more expected fails`, async () => {
      const stored = await encodeBuffer(data, compression, undefined, undefined);
      const back = await collect(decodeStream(chunked(stored), compression, undefined, { bytes: data.length, exact: true }));
      expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      await expect(collect(decodeStream(chunked(stored), compression, undefined, { bytes: data.length - 1, exact: true }))).rejects.toThrow(`decodes to more than the ${data.length - 1} bytes expected`);
      await expect(collect(decodeStream(chunked(stored), compression, undefined, { bytes: data.length + 1, exact: true }))).rejects.toThrow(`decodes to ${data.length} bytes, not the ${data.length + 1} expected (truncated)`);
      expect((await collect(decodeStream(chunked(stored), compression, undefined, { bytes: data.length + 1, exact: false }))).length).toBe(data.length);
    });
  }

  for (const [compression, bomb] of [
    ['gzip', () => gzipBomb(1024)],
    ['lz4', () => lz4FramesOf1MiB(1024)],
    ['zstd', () => zstdFramesOf1MiB(1024)],
  ] as const) {
    it(`${compression}: 1 GiB of valid frames stops just past the 8 KiB expected`, async () => {
      let yielded = 0;
      const started = Date.now();
      await expect(
        (async () => {
          for await (const chunk of decodeStream(chunked(bomb()), compression, undefined, { bytes: 8192, exact: true })) yielded += chunk.length;
        })(),
      ).rejects.toThrow('decodes to more than the 8192 bytes expected');
      expect(yielded).toBeLessThanOrEqual(8192);
      expect(Date.now() - started).toBeLessThan(5000); // generous: well under a second when the machine is idle
    });
  }

  it('countDecoded passes everything through when nothing is expected', async () => {
    expect((await collect(countDecoded(chunked(data), undefined))).length).toBe(data.length);
  });
});
