import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { POOLED_SIZE, givePooledBuffer } from './buffer-pool.js';
import { loadCompressor } from './compressors.js';
import { decodeLz4Frame } from './lz4-decode.js';
import { xxh32 } from './xxh32.js';

/**
 * testdata/: 32 pages (256 KiB) each of pgbench_accounts and of its primary
 * key index, from a pgbench scale-100 cluster (heap block 51200, index
 * block 12800), as pgharbor's lz4 frames (lz4-frame.ts): the two kinds of
 * data the decoder is tuned for, long runs and short matches.
 */
const relations = {
  heap: { file: 'pgbench-accounts-heap.lz4', sha256: '425092bbb264ba8e7dc281f025602ea4bd6d8868cfa15929169d9343dd34731f' },
  index: { file: 'pgbench-accounts-pkey.lz4', sha256: 'a30a9aebe4e2de1153452cdead082a307af0d62c73e1088925cf952b0aa70d04' },
};
const stored = (file: string) => readFileSync(new URL(`./testdata/${file}`, import.meta.url));
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const pages = (kind: keyof typeof relations) => Buffer.from(decodeLz4Frame(stored(relations[kind].file)));

const scratch = mkdtempSync(path.join(tmpdir(), 'pgharbor-lz4-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A frame written by the `lz4` tool with these options (from a file, so that --content-size can be honoured). */
function lz4Tool(data: Buffer, ...options: string[]): Buffer {
  const input = path.join(scratch, 'input');
  writeFileSync(input, data);
  return execFileSync('lz4', ['-c', '-q', ...options, input], { maxBuffer: 256 << 20 });
}

/** Replaces a frame's header checksum with the right one for its (edited) descriptor. */
function resealHeader(frame: Buffer): Buffer {
  const end = frame[4] & 0x08 ? 15 : 7;
  frame[end - 1] = (xxh32(frame, 4, end - 1) >>> 8) & 0xff;
  return frame;
}

/** A frame of one compressed block, written by hand: magic, FLG (v1, independent blocks), BD (64 KiB blocks), header checksum. */
function handFrame(...blocks: number[][]): Buffer {
  const parts = [resealHeader(Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0]))];
  for (const block of blocks) {
    const size = Buffer.alloc(4);
    size.writeUInt32LE(block.length);
    parts.push(size, Buffer.from(block));
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

/** The bytes that extend a literal or match length by `rest`. */
function lengthBytes(rest: number): number[] {
  const bytes: number[] = [];
  for (; rest >= 255; rest -= 255) bytes.push(255);
  bytes.push(rest);
  return bytes;
}

/** The LZ4 block format at its plainest, one byte at a time (valid blocks only), to check the decoder against. */
function referenceDecode(block: number[]): number[] {
  const out: number[] = [];
  for (let ip = 0; ; ) {
    const token = block[ip++];
    let literals = token >> 4;
    if (literals === 15) for (let more = 255; more === 255; literals += more) more = block[ip++];
    for (let i = 0; i < literals; i++) out.push(block[ip++]);
    if (ip === block.length) return out;
    const offset = block[ip] | (block[ip + 1] << 8);
    ip += 2;
    let length = (token & 15) + 4;
    if (length === 19) for (let more = 255; more === 255; length += more) more = block[ip++];
    for (let i = 0; i < length; i++) out.push(out[out.length - offset]);
  }
}

describe('lz4 frame decoder', () => {
  it('decodes the frames pgharbor wrote of real relation pages, into pooled buffers', () => {
    for (const { file, sha256: expected } of Object.values(relations)) {
      const out = decodeLz4Frame(stored(file));
      expect(out.length).toBe(256 * 1024);
      expect(sha256(out)).toBe(expected);
      expect(out.buffer.byteLength).toBe(POOLED_SIZE);
      givePooledBuffer(out);
    }
  });

  it('round-trips real pages through pgharbor\'s compressor and every frame layout of the lz4 tool', async () => {
    const lz4 = await loadCompressor('lz4');
    for (const kind of ['heap', 'index'] as const) {
      const data = pages(kind);
      const frames = [await lz4.compress(data, undefined)];
      for (const options of [[], ['-B4'], ['-B5'], ['-B6'], ['-B7'], ['-B4', '-BD'], ['-B4', '-BX'], ['--content-size'], ['-B4', '-BD', '-BX', '--content-size', '--no-frame-crc'], ['--no-frame-crc'], ['-9'], ['-12', '-B4', '-BD'], ['-10', '--favor-decSpeed']]) {
        frames.push(lz4Tool(data, ...options));
      }
      for (const frame of frames) expect(sha256(decodeLz4Frame(frame))).toBe(relations[kind].sha256);
    }
  });

  it('decodes frames of more than 1 MiB, with and without a content size', async () => {
    const lz4 = await loadCompressor('lz4');
    const data = Buffer.concat([pages('index'), randomBytes(300_000), pages('heap'), pages('index'), Buffer.alloc(2 << 20), pages('heap')]); // 3.3 MiB
    const triple = Buffer.concat([data, data, data]);
    const cases: [Buffer, Buffer][] = [
      [await lz4.compress(data, undefined), data], // one block of up to 4 MiB
      [await lz4.compress(triple, undefined), triple], // three blocks
      [lz4Tool(data, '-B4'), data], // 53 blocks of 64 KiB: the output grows
      [lz4Tool(data, '-B4', '-BD'), data],
      [lz4Tool(data, '-B6', '--content-size'), data], // sized from the header
      [lz4Tool(triple, '-B7', '-BX'), triple],
    ];
    for (const [frame, expected] of cases) expect(decodeLz4Frame(frame).equals(expected)).toBe(true);
  });

  it('decodes the smallest frames: empty, one byte, a stored block, a run of one byte', async () => {
    const lz4 = await loadCompressor('lz4');
    for (const data of [Buffer.alloc(0), Buffer.from('x'), randomBytes(1000), Buffer.alloc(POOLED_SIZE, 7), Buffer.alloc(POOLED_SIZE + 1, 7)]) {
      expect(decodeLz4Frame(await lz4.compress(data, undefined)).equals(data)).toBe(true);
      expect(decodeLz4Frame(lz4Tool(data, '--content-size')).equals(data)).toBe(true);
    }
  });

  it('decodes every literal run and match length, near and far, as a byte-at-a-time decoder does', () => {
    const block = [0xf0, 64 - 15, ...randomBytes(64), 64, 0]; // 64 literals and 4 bytes from 64 back: room to reach back
    const sequence = (literals: number, length: number, offset: number) => {
      block.push((Math.min(literals, 15) << 4) | Math.min(length - 4, 15));
      if (literals >= 15) block.push(...lengthBytes(literals - 15));
      block.push(...randomBytes(literals), offset & 255, offset >> 8);
      if (length >= 19) block.push(...lengthBytes(length - 19));
    };
    // Short ones take decodeLz4Block's fast path, long ones and those near the block's end the checked one.
    for (let literals = 0; literals <= 14; literals++) for (let length = 4; length <= 18; length++) for (const offset of [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 63]) sequence(literals, length, offset);
    for (const literals of [0, 15, 16, 31, 32, 33, 300]) for (const length of [19, 20, 31, 32, 33, 63, 64, 65, 66, 67, 68, 100, 300]) for (const offset of [1, 2, 3, 4, 5, 8, 50, 64, 65, 100, 1000]) sequence(literals, length, offset);
    block.push(0xf0, 30 - 15, ...randomBytes(30));
    const expected = Buffer.from(referenceDecode(block));
    expect(expected.length).toBeGreaterThan(64 * 1024);
    const frame = handFrame(block);
    frame[5] = 0x50; // 256 KiB blocks
    expect(decodeLz4Frame(resealHeader(frame)).equals(expected)).toBe(true);
  });

  it('detects match offsets that reach before the output or the block', () => {
    const literals = [0x40, 0x61, 0x62, 0x63, 0x64]; // "abcd", no match: a block of its own
    expect(decodeLz4Frame(handFrame([0x40, 0x61, 0x62, 0x63, 0x64, 0x04, 0x00, 0x50, 0x31, 0x32, 0x33, 0x34, 0x35])).toString()).toBe('abcdabcd12345');
    // Offset 0, 5 (one before the output), 1000; with a short match and a long one.
    for (const bad of [[0x00, 0x00], [0x05, 0x00], [0xe8, 0x03]]) {
      for (const token of [0x40, 0x4f]) {
        expect(() => decodeLz4Frame(handFrame([token, 0x61, 0x62, 0x63, 0x64, ...bad, ...(token & 15 ? [20] : []), 0x50, 0x31, 0x32, 0x33, 0x34, 0x35]))).toThrow(/match offset out of range/);
      }
    }
    // A short match far from the block's ends (decodeLz4Block's fast path): 1 literal "x" and 8 bytes from `offset` back.
    const head = [0xf0, 200 - 15, ...randomBytes(200), 200, 0]; // 200 literals, 4 bytes from 200 back
    const tail = [0xf0, 25 - 15, ...randomBytes(25)]; // the last literals
    const fast = (offset: number) => handFrame([...head, 0x14, 0x78, offset & 255, offset >> 8, ...tail]);
    expect(decodeLz4Frame(fast(205)).length).toBe(204 + 1 + 8 + 25);
    expect(decodeLz4Frame(fast(1)).subarray(204, 213).toString()).toBe('x'.repeat(9));
    expect(() => decodeLz4Frame(fast(206))).toThrow(/match offset out of range/);
    expect(() => decodeLz4Frame(fast(0))).toThrow(/match offset out of range/);
    // Independent blocks: the second block may not reach into the first; linked blocks may.
    const second = [0x00, 0x04, 0x00, 0x50, 0x31, 0x32, 0x33, 0x34, 0x35];
    expect(() => decodeLz4Frame(handFrame(literals, second))).toThrow(/match offset out of range/);
    const linked = handFrame(literals, second);
    linked[4] = 0x40; // FLG without block independence
    expect(decodeLz4Frame(resealHeader(linked)).toString()).toBe('abcdabcd12345');
  });

  it('throws on blocks that run past their end or decode past the block size', () => {
    expect(() => decodeLz4Frame(handFrame([0x50, 0x61, 0x62]))).toThrow(/literals past its end/);
    expect(() => decodeLz4Frame(handFrame([0xf0, 255, 255]))).toThrow(/literal length/);
    expect(() => decodeLz4Frame(handFrame([0x4f, 0x61, 0x62, 0x63, 0x64, 0x01, 0x00, 255]))).toThrow(/match length/);
    expect(() => decodeLz4Frame(handFrame([0x40, 0x61, 0x62, 0x63, 0x64, 0x01]))).toThrow(/match offset/);
    expect(() => decodeLz4Frame(handFrame([0x40, 0x61, 0x62, 0x63, 0x64, 0x01, 0x00]))).toThrow(/ends without literals/);
    // 64 KiB blocks: a run of 70,000 bytes does not fit one
    const run = [0x1f, 0x61, 0x01, 0x00, ...Array<number>(274).fill(255), 0, 0x00];
    expect(() => decodeLz4Frame(handFrame(run))).toThrow(/more than the frame's block size/);
  });

  it('throws on damaged frame structure: header, sizes, content size, checksums, trailing bytes', async () => {
    const lz4 = await loadCompressor('lz4');
    const data = pages('index');
    const ours = await lz4.compress(data, undefined);
    expect(() => decodeLz4Frame(Buffer.from('not a frame'))).toThrow(/not an lz4 frame/);
    const header = Buffer.from(ours);
    header[5] = 0x60; // another block size, the header checksum left as it was
    expect(() => decodeLz4Frame(header)).toThrow(/header is damaged/);
    const version = resealHeader(Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18, 0xa0, 0x70, 0]), ours.subarray(7)]));
    expect(() => decodeLz4Frame(version)).toThrow(/version 2/);
    expect(() => decodeLz4Frame(resealHeader(Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x30, 0]), ours.subarray(7)])))).toThrow(/invalid block size/);
    expect(() => decodeLz4Frame(Buffer.concat([ours, Buffer.from([0])]))).toThrow(/trailing bytes/);
    const oversized = Buffer.from(ours);
    oversized.writeUInt32LE((4 << 20) + 1, 7);
    expect(() => decodeLz4Frame(oversized)).toThrow(/damaged or truncated/);

    const sized = lz4Tool(data, '--content-size', '--no-frame-crc');
    sized.writeUInt32LE(data.length + 1, 6);
    expect(() => decodeLz4Frame(resealHeader(sized))).toThrow(/bytes where its header says/);
    sized.writeUInt32LE(0xffffffff, 6);
    sized.writeUInt32LE(0xffffffff, 10); // absurd: refused before anything is allocated or decoded
    expect(() => decodeLz4Frame(resealHeader(sized))).toThrow(/lz4 frame that declares 18446744073709552000 bytes of content, more than 1073741824/);

    const checked = lz4Tool(data, '-B4', '-BX');
    const block = Buffer.from(checked);
    block[7 + 4 + 100] ^= 1; // inside the first block
    expect(() => decodeLz4Frame(block)).toThrow(/block is damaged \(checksum\)/);
    const content = Buffer.from(checked);
    content[content.length - 1] ^= 1;
    expect(() => decodeLz4Frame(content)).toThrow(/content checksum/);
  });

  it('throws on every truncation', async () => {
    const lz4 = await loadCompressor('lz4');
    for (const frame of [await lz4.compress(pages('heap'), undefined), lz4Tool(pages('index').subarray(0, 20_000), '-B4', '-BX')]) {
      for (let length = 0; length < frame.length; length += length < 64 ? 1 : 97) {
        expect(() => decodeLz4Frame(frame.subarray(0, length))).toThrow(/lz4/);
      }
      expect(() => decodeLz4Frame(frame.subarray(0, frame.length - 1))).toThrow(/lz4/);
    }
  });

  it('never returns other bytes for a frame with a content checksum, whatever byte is flipped', () => {
    const data = pages('index').subarray(0, 64 * 1024);
    const frame = lz4Tool(data); // the lz4 tool's default: content checksum
    let threw = 0;
    for (let i = 4; i < frame.length; i += 7) {
      const damaged = Buffer.from(frame);
      damaged[i] ^= 1 << (i % 8);
      try {
        // A flipped match offset may point at the same bytes elsewhere (index pages repeat a lot): then the output is still right.
        expect(decodeLz4Frame(damaged).equals(data)).toBe(true);
      } catch (error) {
        expect((error as Error).message).toMatch(/^lz4 /);
        threw++;
      }
    }
    expect(threw).toBeGreaterThan(frame.length / 7 / 2);
  });

  it('fails cleanly, never past its buffers, on damaged frames without checksums and on random blocks', async () => {
    const lz4 = await loadCompressor('lz4');
    for (const kind of ['heap', 'index'] as const) {
      const frame = await lz4.compress(pages(kind), undefined);
      for (let i = 0; i < 1000; i++) {
        const damaged = Buffer.from(frame);
        damaged[7 + ((i * 7919) % (frame.length - 7))] ^= 1 + (i % 255);
        try {
          // may decode to other bytes (the restore's sha256 catches those), but within the block size
          expect(decodeLz4Frame(damaged).length).toBeLessThanOrEqual(4 << 20);
        } catch (error) {
          expect((error as Error).message).toMatch(/^lz4 /);
        }
      }
    }
    for (let i = 0; i < 2000; i++) {
      try {
        decodeLz4Frame(handFrame([...randomBytes(1 + (i % 300))]));
      } catch (error) {
        expect((error as Error).message).toMatch(/^lz4 /);
      }
    }
  });
});

describe('xxh32', () => {
  it('matches the reference values', () => {
    expect(xxh32(Buffer.alloc(0), 0, 0)).toBe(0x02cc5d05);
    expect(xxh32(Buffer.from('abc'), 0, 3)).toBe(0x32d153ff);
    const text = Buffer.from('__Nobody inspects the spammish repetition');
    expect(xxh32(text, 2, text.length)).toBe(0xe2293b2f);
    expect((xxh32(Buffer.from([0x60, 0x70]), 0, 2) >>> 8) & 0xff).toBe(0x73); // pgharbor's frame header
  });
});
