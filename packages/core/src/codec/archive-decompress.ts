import { createRequire } from 'node:module';
import { gunzipStream } from './stream-codec.js';
import { decodeLz4Block, OUT_OF_ROOM } from './lz4-block-decode.js';
import { xxh32 } from './xxh32.js';

/**
 * Decompression of one long stream that another program compressed as a
 * whole: PostgreSQL's server-side backup compression (BASE_BACKUP ...
 * COMPRESSION, PostgreSQL 15+) sends each archive as one gzip member, one
 * LZ4 frame or one zstd frame of any length. pgharbor's own frame codecs
 * (stream-codec.ts) decode whole frames of at most 1 MiB and cannot take
 * those; these decoders hold at most one block and its window instead.
 *
 * Pull-based: output is produced when the consumer asks for it, so a
 * stream that decompresses to far more than it weighs (a bomb) costs time,
 * never memory, and the caller's own limits (tar entry sizes) apply.
 */
export type ArchiveCompression = 'gzip' | 'lz4' | 'zstd';

export function decompressArchiveStream(source: AsyncIterable<Buffer>, compression: ArchiveCompression): AsyncGenerator<Buffer> {
  if (compression === 'gzip') return gunzipStream(source);
  if (compression === 'lz4') return lz4FrameStream(source);
  return zstdStream(source);
}

/** Bytes of a stream, read exactly as asked for. */
class ExactReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private readonly iterator: AsyncIterator<Buffer>;
  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** `n` bytes, or undefined at a clean end of stream (nothing buffered). */
  async read(n: number, what: string): Promise<Buffer | undefined> {
    while (this.have < n) {
      const next = await this.iterator.next();
      if (next.done) {
        if (this.have === 0) return undefined;
        throw new Error(`compressed stream ends inside ${what}`);
      }
      this.chunks.push(next.value);
      this.have += next.value.length;
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.have);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }
}

const LZ4_MAGIC = 0x184d2204;
const LZ4_BLOCK_SIZES = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];
/** Linked blocks may refer to the 64 KiB decoded before them (LZ4 block format). */
const LZ4_WINDOW = 64 * 1024;

/**
 * LZ4 frames (Frame Format 1.6, as liblz4's LZ4F_compress* writes them:
 * PostgreSQL's bbsink_lz4), one after another, block by block: the output
 * buffer holds the 64 KiB window and one block. Block checksums are
 * verified when present; the content checksum too.
 */
async function* lz4FrameStream(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const input = new ExactReader(source);
  for (;;) {
    const start = await input.read(7, 'an lz4 frame header');
    if (!start) return;
    if (start.readUInt32LE(0) !== LZ4_MAGIC) throw new Error('not an lz4 frame (bad magic number)');
    const flg = start[4];
    const bd = start[5];
    if (flg >> 6 !== 1) throw new Error(`lz4 frame version ${flg >> 6} is not supported`);
    if (flg & 1) throw new Error('lz4 frames with a dictionary are not supported');
    const independent = (flg >> 5) & 1;
    const blockChecksum = (flg >> 4) & 1;
    const hasContentSize = (flg >> 3) & 1;
    const contentChecksum = (flg >> 2) & 1;
    const maxBlock = LZ4_BLOCK_SIZES[(bd >> 4) & 7];
    if (!maxBlock) throw new Error('lz4 frame has an invalid block size');
    const header = hasContentSize ? Buffer.concat([start, (await input.read(8, 'an lz4 frame header'))!]) : start;
    if (((xxh32(header, 4, header.length - 1) >>> 8) & 0xff) !== header[header.length - 1]) throw new Error('lz4 frame header is damaged (checksum)');

    const out = Buffer.allocUnsafe(LZ4_WINDOW + maxBlock);
    const view = new DataView(out.buffer, out.byteOffset, out.length);
    let op = 0; // end of the decoded bytes in `out` (the window, then the block)
    let total = 0;
    for (;;) {
      const word = (await input.read(4, 'an lz4 block'))!.readUInt32LE(0);
      if (word === 0) break; // end mark
      const size = word & 0x7fffffff;
      if (size > maxBlock) throw new Error(`lz4 block of ${size} bytes is larger than the frame's block size`);
      const block = (await input.read(size + (blockChecksum ? 4 : 0), 'an lz4 block'))!;
      if (blockChecksum && xxh32(block, 0, size) !== block.readUInt32LE(size)) throw new Error('lz4 block is damaged (checksum)');
      // Keep the last 64 KiB as the window (linked blocks), and room for one block after it.
      if (op + maxBlock > out.length) {
        const keep = Math.min(op, LZ4_WINDOW);
        out.copy(out, 0, op - keep, op);
        op = keep;
      }
      const from = op;
      if (word & 0x80000000) {
        block.copy(out, op, 0, size);
        op += size;
      } else {
        const end = decodeLz4Block(block, 0, size, out, view, op, op + maxBlock, independent ? op : 0);
        if (end === OUT_OF_ROOM) throw new Error("lz4 block is damaged (decodes to more than the frame's block size)");
        op = end;
      }
      total += op - from;
      yield Buffer.from(out.subarray(from, op)); // a copy: `out` is reused for the next block
    }
    if (contentChecksum) await input.read(4, 'an lz4 content checksum'); // every block's bytes reach hashed storage; PostgreSQL's manifest checksums cover the files
    if (hasContentSize) {
      const declared = header.readUInt32LE(10) * 2 ** 32 + header.readUInt32LE(6);
      if (declared !== total) throw new Error(`lz4 frame is damaged (${total} bytes where its header says ${declared})`);
    }
  }
}

/**
 * The largest zstd window accepted (2^23 = 8 MiB, what libzstd uses at
 * level 19 and below, the levels pgharbor asks for): a forged frame asking
 * for a larger window is refused instead of allocating it.
 */
const ZSTD_WINDOW_LOG_MAX = 23;
/** Output per step: libzstd's recommended ZSTD_DStreamOutSize. */
const ZSTD_OUT = 128 * 1024 + 512;

interface ZstdBinding {
  DCtx: new () => { setParameter(param: number, value: number): void; decompressStream(dst: Buffer, src: Buffer): [number, number, number] };
  DParameter: { windowLogMax: number };
}
let zstdBinding: ZstdBinding | undefined;

/**
 * zstd frames, through libzstd's streaming API (zstd-napi's binding, the
 * one its DecompressStream uses): each call produces at most ZSTD_OUT
 * bytes and the next call waits until the consumer wants more. Why not
 * DecompressStream itself: it pushes everything one input chunk decodes
 * to before it looks at backpressure (a 32 KiB chunk of RLE blocks is a
 * gigabyte). Why not @mongodb-js/zstd (core's frame codec): no streaming API.
 */
async function* zstdStream(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  zstdBinding ??= createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding;
  const dctx = new zstdBinding.DCtx();
  dctx.setParameter(zstdBinding.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
  let inFrame = false;
  for await (let src of source) {
    for (;;) {
      const dst = Buffer.allocUnsafe(ZSTD_OUT);
      let ret: number, produced: number, consumed: number;
      try {
        [ret, produced, consumed] = dctx.decompressStream(dst, src);
      } catch (error) {
        throw new Error(`zstd stream is damaged or uses a window larger than ${2 ** ZSTD_WINDOW_LOG_MAX} bytes: ${(error as Error).message}`);
      }
      src = src.subarray(consumed);
      inFrame = ret !== 0;
      if (produced > 0) yield dst.subarray(0, produced);
      if (src.length === 0 && produced < dst.length) break;
    }
  }
  if (inFrame) throw new Error('zstd stream ends in the middle of a frame');
}
