/**
 * Wraps one LZ4 block into a standard LZ4 frame (LZ4 Frame Format 1.6):
 * what the compressor stores for each ≤ 1 MiB frame of a file.
 *
 * Why not lz4-napi's compressFrame: its frame encoder cuts the input into
 * 64 KiB blocks, copies each into a buffer of its own and clears a hash
 * table per block: on a 1.5 GB backup that was ~0.35 s of copying and
 * memset on top of ~0.6 s of compressing. lz4-napi's block `compress`
 * reads the frame where it is and compresses it as one block (the window
 * is 64 KiB either way, so the ratio is the same or better), and the
 * frame around it is a few constant bytes. The `lz4` tool, lz4-napi and
 * lz4-decode.ts read the result like any other frame.
 */

/**
 * Magic number, FLG 0x60 (version 1, independent blocks, no block or
 * content checksum, no content size, no dictionary), BD 0x60 (blocks of
 * up to 1 MiB) and the header checksum: byte 1 of xxh32(FLG, BD).
 */
const HEADER = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x60, 0x51]);
/** The largest block BD 0x60 allows: a frame of the encoder (FRAME_SIZE) is at most this. */
export const LZ4_MAX_BLOCK = 1024 * 1024;
const UNCOMPRESSED = 0x80000000;

/**
 * The frame for `original`, given lz4-napi's `compress` output for it (a
 * 4-byte little-endian original size, then the block). A block that did
 * not shrink is stored as it is, as the format allows.
 */
export function lz4FrameOfBlock(original: Buffer, sizePrefixedBlock: Buffer): Buffer {
  if (original.length > LZ4_MAX_BLOCK) throw new RangeError(`an lz4 frame block holds at most ${LZ4_MAX_BLOCK} bytes, got ${original.length}`);
  if (original.length === 0) return Buffer.concat([HEADER, Buffer.alloc(4)]);
  const block = sizePrefixedBlock.subarray(4);
  const raw = block.length >= original.length;
  const payload = raw ? original : block;
  const frame = Buffer.allocUnsafe(HEADER.length + 4 + payload.length + 4);
  HEADER.copy(frame, 0);
  frame.writeUInt32LE(raw ? (UNCOMPRESSED | payload.length) >>> 0 : payload.length, HEADER.length);
  payload.copy(frame, HEADER.length + 4);
  frame.writeUInt32LE(0, HEADER.length + 4 + payload.length); // end mark
  return frame;
}
