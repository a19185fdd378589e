/**
 * Splits a stream of concatenated LZ4 or zstd frames into whole frames by
 * walking their headers (the formats are public: RFC 8878 for zstd, the
 * LZ4 Frame Format Description for lz4), so each frame can be handed to a
 * buffer decompressor while the stream keeps flowing. Memory: one frame
 * (at most ~1 MiB as pgharbor writes them) plus one incoming chunk.
 */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private length = 0;

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
      frames.push(this.take(size));
    }
    return frames;
  }

  /** The stream ended: anything left is a truncated frame. */
  end(): void {
    if (this.length > 0) throw new Error(`${this.kind} data is truncated (${this.length} bytes of an incomplete frame at the end)`);
  }

  /** Size of the frame at the start of the buffer, or undefined when more bytes are needed to tell. */
  private frameSize(): number | undefined {
    if (this.length < 4) return undefined;
    const magic = this.u32(0)!;
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
      const size = this.u32(4);
      return size === undefined ? undefined : 8 + size; // skippable frame
    }
    return this.kind === 'zstd' ? this.zstdFrameSize(magic) : this.lz4FrameSize(magic);
  }

  private zstdFrameSize(magic: number): number | undefined {
    if (magic !== 0xfd2fb528) throw new Error(`not a zstd frame (magic ${magic.toString(16)})`);
    const fhd = this.byte(4);
    if (fhd === undefined) return undefined;
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const didSize = [0, 1, 2, 4][fhd & 3];
    const fcsSize = [single ? 1 : 0, 2, 4, 8][fcsFlag];
    let pos = 5 + (single ? 0 : 1) + didSize + fcsSize;
    for (;;) {
      const b0 = this.byte(pos);
      const b1 = this.byte(pos + 1);
      const b2 = this.byte(pos + 2);
      if (b2 === undefined || b1 === undefined || b0 === undefined) return undefined;
      const header = b0 | (b1 << 8) | (b2 << 16);
      const last = header & 1;
      const type = (header >> 1) & 3;
      const size = header >>> 3;
      if (type === 3) throw new Error('zstd frame has a reserved block type: the data is damaged');
      pos += 3 + (type === 1 ? 1 : size);
      if (last) break;
      if (pos > this.length) return undefined;
    }
    return pos + (checksum ? 4 : 0);
  }

  private lz4FrameSize(magic: number): number | undefined {
    if (magic !== 0x184d2204) throw new Error(`not an lz4 frame (magic ${magic.toString(16)})`);
    const flg = this.byte(4);
    if (flg === undefined) return undefined;
    const blockChecksum = (flg >> 4) & 1;
    const contentSize = (flg >> 3) & 1;
    const contentChecksum = (flg >> 2) & 1;
    const dictId = flg & 1;
    let pos = 6 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1;
    for (;;) {
      const word = this.u32(pos);
      if (word === undefined) return undefined;
      pos += 4;
      if (word === 0) break; // end mark
      pos += (word & 0x7fffffff) + (blockChecksum ? 4 : 0);
      if (pos > this.length) return undefined;
    }
    return pos + (contentChecksum ? 4 : 0);
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
