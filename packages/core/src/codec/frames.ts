import { DecodeBoundError, FRAME_SIZE, MAX_STORED_FRAME, frameTooLarge } from './decode-bounds.js';
import { ZSTD_MAGIC, readZstdBlock, readZstdFrameHeader } from './zstd-frame.js';

const LZ4_MAGIC = 0x184d2204;

/**
 * Splits a stream of concatenated LZ4 or zstd frames into whole frames by
 * walking their headers (the formats are public: RFC 8878 for zstd, the
 * LZ4 Frame Format Description for lz4), so each frame can be handed to a
 * buffer decompressor while the stream keeps flowing. Memory: one frame
 * plus one incoming chunk.
 *
 * A repository's bytes are not trusted (decode-bounds.ts): a frame that
 * would be stored in more than MAX_STORED_FRAME bytes is refused before
 * more of it is buffered, and so is one whose header, or whose blocks of
 * known size (stored as they are, runs of one byte), say that it decodes
 * to more than FRAME_SIZE. Skippable frames (pgharbor writes none) are
 * dropped.
 */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private length = 0;
  /** How far the frame at the start has been walked, kept while its bytes arrive: a walk never starts over. */
  private walk?: { pos: number; known: number; end?: number; size?: number };
  private readonly byteAt = (at: number) => this.byte(at);

  constructor(private readonly kind: 'lz4' | 'zstd') {}

  /** Add bytes; returns the frames completed by them. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const frames: Buffer[] = [];
    for (;;) {
      const size = this.frameSize();
      if (size === undefined || size > this.length) break;
      const frame = this.take(size);
      this.walk = undefined;
      if (!isSkippable(frame.readUInt32LE(0))) frames.push(frame);
    }
    return frames;
  }

  /** The stream ended: anything left is a truncated frame. */
  end(): void {
    if (this.length > 0) throw new Error(`${this.kind} data is truncated (${this.length} bytes of an incomplete frame at the end)`);
  }

  /** Size of the frame at the start of the buffer; at least what is buffered, or undefined, when more bytes are needed to tell. */
  private frameSize(): number | undefined {
    if (this.length < 4) return undefined;
    const magic = this.u32(0)!;
    let size: number | undefined;
    if (isSkippable(magic)) {
      const length = this.u32(4);
      size = length === undefined ? undefined : 8 + length;
    } else size = this.kind === 'zstd' ? this.zstdFrameSize(magic) : this.lz4FrameSize(magic);
    // Checked as the walk goes: an unfinished frame is past the bound as soon as its known part is.
    if ((size ?? this.length) > MAX_STORED_FRAME) {
      throw new DecodeBoundError(`has ${this.kind === 'lz4' ? 'an' : 'a'} ${this.kind} frame stored in more than ${MAX_STORED_FRAME} bytes (a frame of 1 MiB, pgharbor's largest, takes less)`);
    }
    return size;
  }

  private zstdFrameSize(magic: number): number | undefined {
    if (magic !== ZSTD_MAGIC) throw new Error(`not a zstd frame (magic ${magic.toString(16)})`);
    if (!this.walk) {
      const header = readZstdFrameHeader(this.byteAt);
      if (!header) return undefined;
      if (header.contentSize !== undefined && header.contentSize > FRAME_SIZE) throw frameTooLarge('zstd', FRAME_SIZE, header.contentSize);
      this.walk = { pos: header.size, known: 0, end: header.checksum ? 4 : 0 };
    }
    const walk = this.walk;
    if (walk.size !== undefined) return walk.size; // every block walked: waiting for the last one's bytes
    while (walk.pos <= this.length) {
      const block = readZstdBlock(this.byteAt, walk.pos);
      if (!block) return undefined;
      if (block.exact && (walk.known += block.bound) > FRAME_SIZE) throw frameTooLarge('zstd', FRAME_SIZE);
      walk.pos = block.end;
      if (block.last) return (walk.size = walk.pos + walk.end!);
    }
    return walk.pos; // the rest once more bytes are in
  }

  private lz4FrameSize(magic: number): number | undefined {
    if (magic !== LZ4_MAGIC) throw new Error(`not an lz4 frame (magic ${magic.toString(16)})`);
    const flg = this.byte(4);
    if (flg === undefined) return undefined;
    const blockChecksum = (flg >> 4) & 1;
    const contentChecksum = (flg >> 2) & 1;
    if (!this.walk) {
      const contentSize = (flg >> 3) & 1;
      if (contentSize) {
        const low = this.u32(6);
        const high = this.u32(10);
        if (low === undefined || high === undefined) return undefined;
        if (high * 2 ** 32 + low > FRAME_SIZE) throw frameTooLarge('lz4', FRAME_SIZE, high * 2 ** 32 + low);
      }
      this.walk = { pos: 6 + (contentSize ? 8 : 0) + (flg & 1 ? 4 : 0) + 1, known: 0 };
    }
    const walk = this.walk;
    while (walk.pos <= this.length) {
      const word = this.u32(walk.pos);
      if (word === undefined) return undefined;
      if (word === 0) return walk.pos + 4 + (contentChecksum ? 4 : 0); // end mark: read again until its bytes are in, never walked past
      // A block stored as it is decodes to its size: known before it is decoded.
      if (word & 0x80000000 && (walk.known += word & 0x7fffffff) > FRAME_SIZE) throw frameTooLarge('lz4', FRAME_SIZE);
      walk.pos += 4 + (word & 0x7fffffff) + (blockChecksum ? 4 : 0);
    }
    return walk.pos; // the rest once more bytes are in
  }

  private byte(at: number): number | undefined {
    if (at >= this.length) return undefined;
    for (const chunk of this.chunks) {
      if (at < chunk.length) return chunk[at];
      at -= chunk.length;
    }
    return undefined;
  }

  private u32(at: number): number | undefined {
    if (at + 4 > this.length) return undefined;
    const first = this.chunks[0];
    if (at + 4 <= first.length) return first.readUInt32LE(at);
    return (this.byte(at)! | (this.byte(at + 1)! << 8) | (this.byte(at + 2)! << 16) | (this.byte(at + 3)! << 24)) >>> 0;
  }

  private take(size: number): Buffer {
    const parts: Buffer[] = [];
    let left = size;
    while (left > 0) {
      const chunk = this.chunks[0];
      if (chunk.length <= left) {
        parts.push(chunk);
        this.chunks.shift();
        left -= chunk.length;
      } else {
        parts.push(chunk.subarray(0, left));
        this.chunks[0] = chunk.subarray(left);
        left = 0;
      }
    }
    this.length -= size;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
  }
}

function isSkippable(magic: number): boolean {
  return (magic & 0xfffffff0) >>> 0 === 0x184d2a50;
}
