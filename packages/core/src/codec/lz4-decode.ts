import { POOLED_SIZE, givePooledBuffer, takePooledBuffer } from './buffer-pool.js';
import { OUT_OF_ROOM, decodeLz4Block } from './lz4-block-decode.js';
import { xxh32 } from './xxh32.js';
import { frameTooLarge } from './decode-bounds.js';

/**
 * An LZ4 frame decoder in plain TypeScript (LZ4 Frame Format 1.6 and the
 * LZ4 block format), for reading back the frames lz4-frame.ts writes (and
 * any other writer's: the `lz4` tool's, lz4-napi's), on the main thread.
 *
 * Why not lz4-napi's decompressFrame: its output buffers are allocated by
 * Rust on libuv's threads and never reported to V8, so the garbage
 * collector feels no pressure and glibc keeps the freed memory in
 * per-thread arenas: a restore of an lz4 backup peaked at 340+ MiB RSS
 * against 180 MiB with zstd. Here the output is a buffer of buffer-pool.ts
 * (give it back once its bytes are used) and nothing else is allocated for
 * a frame of up to 1 MiB, the most pgharbor writes in one.
 *
 * Why not lz4_flex in WebAssembly (lz4-wasm-nodejs 0.9.2, which
 * lz4-frame.ts compresses with), called through its raw exports and
 * copied straight into the pooled buffer: slower on heap pages, no faster
 * on index pages, and unsafe on damaged ones. 1 MiB frames of pgbench
 * scale-100 files, MiB/s of output per CPU second, same machine, same run
 * (best of 3 passes, median of 3 runs):
 *
 *                                     heap (long runs)   pkey index (short matches)
 *   this decoder                           3,340               1,630
 *   lz4_flex in WebAssembly                2,240               1,400
 *   (same, told each block's size)         2,440               1,930
 *   the decoder before this one            2,500                 610
 *
 * - Its decompress wants each block's exact decoded size in front of it
 *   (a larger one fails: "the expected decompressed size differs"), and
 *   pgharbor's frames carry no content size: finding it takes a pass over
 *   the block's sequences first, which costs as much as this decoder's own
 *   parsing. Even told the size, it is slower on heap pages.
 * - lz4_flex 0.9.2 predates later fixes to its match offset checks
 *   (RUSTSEC-2026-0041; the checked-decode fixes of 2023): a block
 *   whose match offset is 0 decodes without an error to bytes left in the
 *   module's memory by earlier calls (tried: part of an earlier error
 *   message came out). That memory is shared with compression.
 * - Each error it returns stays referenced by its wasm-bindgen glue for good.
 * - Its memory grows on the first 1 MiB call, which detaches an
 *   ArrayBuffer: all typed-array code of the process runs 30% slower from
 *   then on (see lz4-block-decode.ts).
 *
 * What makes this one fast on short matches (it was a method call per
 * sequence and byte loops): see lz4-block-decode.ts.
 *
 * Checksums are verified where a frame has them (the header's always;
 * blocks' and content's when flagged), and so is the content size, so a
 * damaged frame throws rather than decode to other bytes whenever it can
 * tell; pgharbor's own frames have none of these but the header's (the
 * restore's sha256 of every file catches the rest).
 *
 * `limit` bounds the output (decode-bounds.ts: a restore passes 1 MiB,
 * the most pgharbor writes in a frame): a content size above it is refused
 * before anything is decoded, and a block is decoded to no further than
 * it, so a forged frame costs no more memory than a real one.
 */
export function decodeLz4Frame(frame: Buffer, limit = MAX_OUTPUT): Buffer {
  if (frame.length < 7 || frame.readUInt32LE(0) !== 0x184d2204) throw new Error('not an lz4 frame');
  const flg = frame[4];
  const bd = frame[5];
  if (flg >> 6 !== 1) throw new Error(`lz4 frame version ${flg >> 6} is not supported`);
  const independent = (flg >> 5) & 1;
  const blockChecksum = (flg >> 4) & 1;
  const hasContentSize = (flg >> 3) & 1;
  const contentChecksum = (flg >> 2) & 1;
  if (flg & 1) throw new Error('lz4 frames with a dictionary are not supported');
  const maxBlock = BLOCK_SIZES[(bd >> 4) & 7];
  if (!maxBlock) throw new Error('lz4 frame has an invalid block size');
  const headerEnd = hasContentSize ? 15 : 7;
  if (frame.length < headerEnd) throw new Error('lz4 frame is truncated');
  if (((xxh32(frame, 4, headerEnd - 1) >>> 8) & 0xff) !== frame[headerEnd - 1]) throw new Error('lz4 frame header is damaged (checksum)');
  // A content size is only a hint for the output's size until checked at the end (a damaged one must not allocate gigabytes).
  const contentSize = hasContentSize ? frame.readUInt32LE(10) * 2 ** 32 + frame.readUInt32LE(6) : -1;
  const cap = Math.min(limit, MAX_OUTPUT);
  if (contentSize > cap) throw frameTooLarge('lz4', cap, contentSize);

  // Locals rather than an object: nothing but the output is allocated per frame.
  let out: Buffer;
  let view: DataView;
  if (contentSize > POOLED_SIZE && contentSize <= outputBound(frame, headerEnd, maxBlock, blockChecksum)) {
    out = Buffer.allocUnsafe(contentSize);
    view = viewOf(out);
  } else {
    out = takePooledBuffer();
    view = viewOf(out); // one small object per frame: a cache keyed by buffer kept dropped buffers alive until a full collection
  }
  let op = 0;
  let pos = headerEnd;
  for (;;) {
    if (pos + 4 > frame.length) throw new Error('lz4 frame is truncated');
    const word = frame.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break; // end mark
    const size = word & 0x7fffffff;
    const next = pos + size + (blockChecksum ? 4 : 0);
    if (size > maxBlock || next > frame.length) throw new Error('lz4 block is damaged or truncated');
    if (blockChecksum && xxh32(frame, pos, pos + size) !== frame.readUInt32LE(pos + size)) throw new Error('lz4 block is damaged (checksum)');
    if (word & 0x80000000) {
      // stored as it is
      if (size > cap - op) throw frameTooLarge('lz4', cap);
      if (size > out.length - op) view = viewOf((out = grown(out, op, op + size)));
      frame.copy(out, op, pos, pos + size);
      op += size;
    } else {
      // At most maxBlock bytes, and never past the cap; if the output has less room left, it grows and the block is decoded again.
      const blockEnd = op + maxBlock;
      const stop = Math.min(blockEnd, cap);
      for (;;) {
        const end = decodeLz4Block(frame, pos, pos + size, out, view, op, Math.min(stop, out.length), independent ? op : 0);
        if (end !== OUT_OF_ROOM) {
          op = end;
          break;
        }
        if (out.length >= stop) throw stop < blockEnd ? frameTooLarge('lz4', cap) : new Error("lz4 block is damaged (decodes to more than the frame's block size)");
        view = viewOf((out = grown(out, op, stop)));
      }
    }
    pos = next;
  }
  if (contentChecksum) {
    if (pos + 4 > frame.length) throw new Error('lz4 frame is truncated');
    if (xxh32(out, 0, op) !== frame.readUInt32LE(pos)) throw new Error('lz4 frame is damaged (content checksum)');
    pos += 4;
  }
  if (pos !== frame.length) throw new Error('lz4 frame has trailing bytes');
  if (hasContentSize && op !== contentSize) throw new Error(`lz4 frame is damaged (${op} bytes where its header says ${contentSize})`);
  return op === out.length ? out : out.subarray(0, op);
}

const BLOCK_SIZES = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];
/** The most one frame may decode to: far beyond any writer's frames, and it keeps lz4-block-decode.ts's offsets in int32. */
const MAX_OUTPUT = 1 << 30;

/** Most a frame's blocks can decode to: each block at most the frame's block size, a stored block its own size. */
function outputBound(frame: Buffer, pos: number, maxBlock: number, blockChecksum: number): number {
  let bound = 0;
  while (pos + 4 <= frame.length) {
    const word = frame.readUInt32LE(pos);
    if (word === 0) break;
    const size = word & 0x7fffffff;
    bound += word & 0x80000000 ? size : maxBlock;
    pos += 4 + size + (blockChecksum ? 4 : 0);
  }
  return bound;
}

/** A buffer of at least `need` bytes (1.5x at least: frames of many blocks are copied a few times only) holding out[0, length). */
function grown(out: Buffer, length: number, need: number): Buffer {
  const bigger = Buffer.allocUnsafe(Math.min(MAX_OUTPUT, Math.max(need, Math.floor(out.length * 1.5))));
  out.copy(bigger, 0, 0, length);
  givePooledBuffer(out);
  return bigger;
}

function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.length);
}
