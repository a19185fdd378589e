import { gzipSync } from 'node:zlib';

/**
 * Compressed data that decodes to far more than it is stored in, built
 * by hand from the formats (RFC 8878, the LZ4 frame and block formats,
 * RFC 1952) without ever holding what it decodes to: what someone with
 * write access to a repository can plant (docs/security.md, "Decoding is
 * bounded"). For the codec tests, test/hostile-decoding.test.ts and
 * bench/decode-bombs.mjs.
 */

const MiB = 1024 * 1024;
const ZSTD_BLOCK = 128 * 1024;
const LZ4_BLOCK = 4 * MiB;

/** A zstd compressed block (type 2) of `size` ≤ 128 KiB bytes of one value: RLE literals, no sequences. */
function zstdLiteralRunBlock(size: number, last: boolean, value = 0x41): Buffer {
  const body = [1 | (3 << 2) | ((size & 15) << 4), (size >> 4) & 255, size >> 12, value, 0]; // RLE literals, 20-bit size; 0 sequences
  const header = (last ? 1 : 0) | (2 << 1) | (body.length << 3);
  return Buffer.from([header & 255, (header >> 8) & 255, header >> 16, ...body]);
}

/** An RLE block (type 1) of `size` ≤ 128 KiB: what the splitter can count without decoding. */
function zstdRleBlock(size: number, last: boolean): Buffer {
  const header = (last ? 1 : 0) | (1 << 1) | (size << 3);
  return Buffer.from([header & 255, (header >> 8) & 255, header >> 16, 0x41]);
}

/** Frame header without content size, window 1 MiB (Window_Descriptor exponent 10). */
const ZSTD_HEADER = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 10 << 3]);

/**
 * One zstd frame of compressed blocks decoding to `bytes` (a multiple of
 * 128 KiB): 8 stored bytes per 128 KiB, so 2.6 GB in 160 KB. Its block
 * headers say "compressed", nothing more: only decoding tells their size.
 */
export function zstdBlockBomb(bytes: number): Buffer {
  const blocks = Math.ceil(bytes / ZSTD_BLOCK);
  return Buffer.concat([ZSTD_HEADER, ...Array.from({ length: blocks }, (_, i) => zstdLiteralRunBlock(ZSTD_BLOCK, i === blocks - 1))]);
}

/** One zstd frame of RLE blocks decoding to `bytes` (a multiple of 128 KiB): sizes the block headers give. */
export function zstdRleBomb(bytes: number): Buffer {
  const blocks = Math.ceil(bytes / ZSTD_BLOCK);
  return Buffer.concat([ZSTD_HEADER, ...Array.from({ length: blocks }, (_, i) => zstdRleBlock(ZSTD_BLOCK, i === blocks - 1))]);
}

/** A frame whose header declares `declared` bytes of content (8-byte Frame_Content_Size), holding one small block. */
export function zstdDeclaredBomb(declared: number): Buffer {
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(declared));
  return Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xc0, 10 << 3]), size, zstdRleBlock(16, true)]);
}

/**
 * `frames` valid zstd frames of 1 MiB of 'A' each, as pgharbor's frames
 * are sized: every frame within bounds, the object as large as wanted
 * (64 bytes a MiB).
 */
export function zstdFramesOf1MiB(frames: number): Buffer {
  const frame = Buffer.concat([ZSTD_HEADER, ...Array.from({ length: 8 }, (_, i) => zstdLiteralRunBlock(ZSTD_BLOCK, i === 7))]);
  return Buffer.concat(Array.from({ length: frames }, () => frame));
}

/** An lz4 frame header: version 1, independent blocks, 4 MiB blocks, no checksums; its header checksum, xxh32-derived, fixed. */
const LZ4_HEADER = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]);

/** An lz4 block decoding to `size` bytes (≤ 4 MiB, ≥ 10): a literal, one long overlapping match, 5 closing literals. */
function lz4RunBlock(size: number): Buffer {
  let rest = size - 1 - 5 - 4 - 15; // the match's length beyond what its token says
  const lengths: number[] = [];
  for (; rest >= 255; rest -= 255) lengths.push(255);
  lengths.push(rest);
  const body = Buffer.from([0x1f, 0x41, 0x01, 0x00, ...lengths, 0x50, 0x41, 0x41, 0x41, 0x41, 0x41]);
  const word = Buffer.alloc(4);
  word.writeUInt32LE(body.length);
  return Buffer.concat([word, body]);
}

/** One lz4 frame of `blocks` blocks of 4 MiB each (16 KB stored a block). */
export function lz4BlockBomb(blocks: number): Buffer {
  return Buffer.concat([LZ4_HEADER, ...Array.from({ length: blocks }, () => lz4RunBlock(LZ4_BLOCK)), Buffer.alloc(4)]);
}

/** `frames` valid lz4 frames of 1 MiB each (4 KB stored a frame). */
export function lz4FramesOf1MiB(frames: number): Buffer {
  const frame = Buffer.concat([LZ4_HEADER, lz4RunBlock(MiB), Buffer.alloc(4)]);
  return Buffer.concat(Array.from({ length: frames }, () => frame));
}

/** gzip members of 1 MiB of zeros each, `members` of them (about 1 KB stored a MiB). */
export function gzipBomb(members: number): Buffer {
  const member = gzipSync(Buffer.alloc(MiB), { level: 9 });
  return Buffer.concat(Array.from({ length: members }, () => member));
}
