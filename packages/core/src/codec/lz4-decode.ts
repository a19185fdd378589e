import { POOLED_SIZE, givePooledBuffer, takePooledBuffer } from './buffer-pool.js';

/**
 * An LZ4 frame decoder in plain TypeScript (LZ4 Frame Format 1.6 and the
 * LZ4 block format), for reading back what lz4-napi wrote.
 *
 * Why not lz4-napi's own decompressFrame: its output buffers are allocated
 * by Rust on libuv's threads and never reported to V8, so the garbage
 * collector feels no pressure and glibc keeps the freed memory in
 * per-thread arenas: a restore of an lz4 backup peaked at 340+ MiB RSS
 * against 180 MiB with zstd. Decoding here allocates ordinary Node
 * buffers (accounted, collected, pooled) at about the speed of the native
 * call (measured below 1 ms per MiB here), on the main thread. The output
 * is a buffer of buffer-pool.ts: give it back once its bytes are used.
 */
export function decodeLz4Frame(frame: Buffer): Buffer {
  if (frame.length < 7 || frame.readUInt32LE(0) !== 0x184d2204) throw new Error('not an lz4 frame');
  const flg = frame[4];
  const bd = frame[5];
  if (flg >> 6 !== 1) throw new Error(`lz4 frame version ${flg >> 6} is not supported`);
  const blockChecksum = (flg >> 4) & 1;
  const hasContentSize = (flg >> 3) & 1;
  const contentChecksum = (flg >> 2) & 1;
  const dictId = flg & 1;
  if (dictId) throw new Error('lz4 frames with a dictionary are not supported');
  const maxBlock = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20][(bd >> 4) & 7];
  if (!maxBlock) throw new Error('lz4 frame has an invalid block size');
  let pos = 6;
  let capacity: number | undefined;
  if (hasContentSize) {
    capacity = Number(frame.readBigUInt64LE(6));
    pos += 8;
  }
  pos += 1; // header checksum
  // Without a content size (lz4-napi writes none), start at the frame size pgharbor writes (1 MiB) unless
  // the block headers promise less: growing from 64 KiB by doubling copied each frame four times over.
  const out = new Output(capacity ?? Math.min(POOLED_SIZE, outputBound(frame, pos, maxBlock, blockChecksum)));
  for (;;) {
    if (pos + 4 > frame.length) throw new Error('lz4 frame is truncated');
    const word = frame.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    if (size > maxBlock || pos + size > frame.length) throw new Error('lz4 block is damaged or truncated');
    if (word & 0x80000000) out.literal(frame, pos, size);
    else decodeBlock(frame, pos, pos + size, out);
    pos += size + (blockChecksum ? 4 : 0);
  }
  if (contentChecksum) pos += 4;
  if (pos !== frame.length) throw new Error('lz4 frame has trailing bytes');
  return out.result();
}

/** Upper bound of a frame's decoded size: each block decodes to at most the frame's block size, a stored block to its own size. */
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

class Output {
  buf: Buffer;
  length = 0;

  constructor(capacity: number) {
    // Frames as pgharbor writes them (≤ 1 MiB) decode into reusable buffers; see buffer-pool.ts.
    this.buf = capacity <= POOLED_SIZE ? takePooledBuffer() : Buffer.allocUnsafe(capacity);
  }

  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.length);
    givePooledBuffer(this.buf);
    this.buf = grown;
  }

  literal(src: Buffer, start: number, count: number): void {
    this.reserve(count);
    const buf = this.buf;
    if (count < 32) {
      let op = this.length;
      for (let i = 0; i < count; i++) buf[op++] = src[start + i];
    } else src.copy(buf, this.length, start, start + count);
    this.length += count;
  }

  match(offset: number, count: number): void {
    if (offset === 0 || offset > this.length) throw new Error('lz4 block is damaged (match offset out of range)');
    this.reserve(count);
    const buf = this.buf;
    let op = this.length;
    const from = op - offset;
    if (count < 32) {
      for (let i = 0; i < count; i++) buf[op + i] = buf[from + i];
    } else if (offset >= count) {
      buf.copyWithin(op, from, from + count);
    } else {
      // Overlapping: the pattern doubles with every copy.
      let left = count;
      while (left > 0) {
        const n = Math.min(left, op - from);
        buf.copyWithin(op, from, from + n);
        op += n;
        left -= n;
      }
    }
    this.length += count;
  }

  result(): Buffer {
    return this.length === this.buf.length ? this.buf : this.buf.subarray(0, this.length);
  }
}

function decodeBlock(src: Buffer, ip: number, end: number, out: Output): void {
  for (;;) {
    if (ip >= end) throw new Error('lz4 block is damaged (ends without literals)');
    const token = src[ip++];
    let literals = token >> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= end) throw new Error('lz4 block is damaged (literal length)');
        b = src[ip++];
        literals += b;
      } while (b === 255);
    }
    if (ip + literals > end) throw new Error('lz4 block is damaged (literals past its end)');
    out.literal(src, ip, literals);
    ip += literals;
    if (ip === end) return; // the last sequence has literals only
    if (ip + 2 > end) throw new Error('lz4 block is damaged (match offset)');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    let length = token & 15;
    if (length === 15) {
      let b: number;
      do {
        if (ip >= end) throw new Error('lz4 block is damaged (match length)');
        b = src[ip++];
        length += b;
      } while (b === 255);
    }
    out.match(offset, length + 4);
  }
}
