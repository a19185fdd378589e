/**
 * The layout of one zstd frame (RFC 8878, 3.1.1): its header, and its
 * blocks with what each may decode to. Read by the splitter (frames.ts),
 * over bytes still arriving, and by the bounded decoder (zstd-decode.ts).
 */

/** A byte of the frame, or undefined when it has not arrived (yet). */
export type ByteAt = (at: number) => number | undefined;

export interface ZstdFrameHeader {
  /** Bytes from the frame's start to its first block. */
  size: number;
  /** Frame_Content_Size, when the header has one. */
  contentSize?: number;
  singleSegment: boolean;
  checksum: boolean;
  /** Bytes of the Dictionary_ID field. */
  dictionaryBytes: number;
}

export const ZSTD_MAGIC = 0xfd2fb528;
/** Block_Maximum_Size at its largest: no block of any frame decodes to more (libzstd checks each block). */
export const ZSTD_MAX_BLOCK = 128 * 1024;

/** The header of the frame at 0 (its magic already checked), or undefined while its bytes are still arriving. */
export function readZstdFrameHeader(byteAt: ByteAt): ZstdFrameHeader | undefined {
  const fhd = byteAt(4);
  if (fhd === undefined) return undefined;
  const singleSegment = ((fhd >> 5) & 1) === 1;
  const dictionaryBytes = [0, 1, 2, 4][fhd & 3];
  const contentBytes = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6];
  const at = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
  const size = at + contentBytes;
  if (byteAt(size - 1) === undefined) return undefined;
  let contentSize: number | undefined;
  if (contentBytes > 0) {
    contentSize = 0;
    for (let i = contentBytes - 1; i >= 0; i--) contentSize = contentSize * 256 + byteAt(at + i)!;
    if (contentBytes === 2) contentSize += 256;
  }
  return { size, contentSize, singleSegment, checksum: ((fhd >> 2) & 1) === 1, dictionaryBytes };
}

export interface ZstdBlock {
  /** Offset of its 3-byte header in the frame. */
  start: number;
  /** Offset just past it. */
  end: number;
  /** The most it decodes to: exact for raw and RLE blocks, ZSTD_MAX_BLOCK for a compressed one. */
  bound: number;
  /** Raw or RLE: `bound` is what it decodes to. */
  exact: boolean;
  last: boolean;
}

/**
 * The block at `at`, or undefined while its header is still arriving.
 * Throws on what no frame may hold: the reserved block type, a raw or RLE
 * block longer than a block may be.
 */
export function readZstdBlock(byteAt: ByteAt, at: number): ZstdBlock | undefined {
  const b0 = byteAt(at);
  const b1 = byteAt(at + 1);
  const b2 = byteAt(at + 2);
  if (b0 === undefined || b1 === undefined || b2 === undefined) return undefined;
  const header = b0 | (b1 << 8) | (b2 << 16);
  const type = (header >> 1) & 3;
  const size = header >>> 3;
  if (type === 3) throw new Error('zstd frame has a reserved block type: the data is damaged');
  if (type !== 2 && size > ZSTD_MAX_BLOCK) throw new Error(`zstd frame has a block of ${size} bytes, more than a block may hold: the data is damaged`);
  return { start: at, end: at + 3 + (type === 1 ? 1 : size), bound: type === 2 ? ZSTD_MAX_BLOCK : size, exact: type !== 2, last: (header & 1) === 1 };
}

/** Every block of a complete frame, in order. */
export function zstdBlocks(frame: Buffer, header: ZstdFrameHeader): ZstdBlock[] {
  const byteAt: ByteAt = (at) => (at < frame.length ? frame[at] : undefined);
  const blocks: ZstdBlock[] = [];
  for (let at = header.size; ; ) {
    const block = readZstdBlock(byteAt, at);
    if (!block || block.end > frame.length) throw new Error('zstd frame is truncated');
    blocks.push(block);
    if (block.last) return blocks;
    at = block.end;
  }
}
