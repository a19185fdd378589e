/**
 * Writes LZ4 frames (LZ4 Frame Format 1.6) around blocks compressed by
 * lz4-napi's block API. lz4-napi's own frame encoder (lz4_flex's
 * FrameEncoder) compresses WAL and data files 3 to 4 times slower than its
 * block compressor, for the same output; archive-push compresses every
 * segment while PostgreSQL waits. The frames are what `lz4` and
 * lz4-decode.ts read: independent blocks, no checksums (as lz4-napi wrote
 * them), an uncompressible block stored as it is.
 */

/** Magic, FLG 0x60 (version 1, independent blocks), BD 0x70 (blocks up to 4 MiB), and their header checksum (xxh32 >> 8). */
const FRAME_HEADER = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]);
const MAX_BLOCK = 4 << 20;
const END_MARK = Buffer.alloc(4);
const UNCOMPRESSED = 0x80000000;

/** `compressBlock`: lz4-napi's compress, whose output starts with the original size (4 bytes, lz4_flex's compress_prepend_size). */
export async function encodeLz4Frame(data: Buffer, compressBlock: (block: Buffer) => Promise<Buffer>): Promise<Buffer> {
  const blocks: Buffer[] = [];
  for (let at = 0; at < data.length; at += MAX_BLOCK) blocks.push(data.subarray(at, at + MAX_BLOCK));
  const compressed = await Promise.all(blocks.map((block) => compressBlock(block)));
  const parts: Buffer[] = [FRAME_HEADER];
  blocks.forEach((block, index) => {
    const raw = compressed[index].subarray(4);
    const size = Buffer.allocUnsafe(4);
    if (raw.length < block.length) {
      size.writeUInt32LE(raw.length);
      parts.push(size, raw);
    } else {
      size.writeUInt32LE((block.length | UNCOMPRESSED) >>> 0);
      parts.push(size, block);
    }
  });
  parts.push(END_MARK);
  return Buffer.concat(parts);
}
