import { DecodeBoundError, FRAME_SIZE, frameTooLarge } from './decode-bounds.js';
import { readZstdFrameHeader, zstdBlocks, type ZstdBlock, type ZstdFrameHeader } from './zstd-frame.js';

/**
 * One zstd frame decoded to at most `limit` bytes, by a decompressor that
 * has no limit of its own: @mongodb-js/zstd 1.x decodes a whole input with
 * zstd-rs's decode_all, into a vector that grows as long as output comes
 * (tried: a 160 KB frame of 20,000 RLE blocks made it allocate 2.6 GB for
 * 28 s). What bounds its output is libzstd's own rule that no block
 * decodes to more than 128 KiB (Block_Maximum_Size; it refuses such a
 * block, checked here with a 1 KiB window): the blocks' headers, read
 * before anything is decoded, bound the frame.
 *
 * Most frames are decoded at once: pgharbor's frames of 1 MiB hold 8
 * blocks of 128 KiB at zstd levels 1-15 and up to ~100 smaller ones from
 * level 16 on (the block splitter), under PASS_BUDGET. A frame whose
 * blocks could produce more is decoded in passes: each a prefix of its
 * blocks, cut where the bytes known so far plus what the next blocks may
 * add reach PASS_BUDGET, rewritten as a frame of its own (last-block flag
 * on its last block, no checksum, no content size), and decoded again from
 * the start, until the whole frame fits or a prefix decodes to more than
 * `limit`. A frame of forged blocks that decode to nothing would take one
 * pass per ~60 blocks: MAX_PASSES stops it.
 */
export async function decodeZstdFrame(frame: Buffer, limit: number, decompress: (frame: Buffer) => Promise<Buffer>): Promise<Buffer> {
  const byteAt = (at: number) => (at < frame.length ? frame[at] : undefined);
  const header = readZstdFrameHeader(byteAt);
  if (!header) throw new Error('zstd frame is truncated');
  if (header.contentSize !== undefined && header.contentSize > limit) throw frameTooLarge('zstd', limit, header.contentSize);
  const blocks = zstdBlocks(frame, header);
  let known = 0; // what blocks[0, done) decode to
  let done = 0;
  for (let pass = 1; ; pass++) {
    let upto = done;
    for (let bound = known; upto < blocks.length && bound + blocks[upto].bound <= PASS_BUDGET; upto++) bound += blocks[upto].bound;
    if (upto === done) upto++; // every pass decodes one more block at least
    const whole = upto === blocks.length;
    if (!whole && pass > MAX_PASSES) throw new DecodeBoundError(`has a zstd frame of ${blocks.length} blocks that could decode to more than ${limit} bytes, too many to check piece by piece`);
    const out = await decompress(whole ? frame : framePrefix(frame, header, blocks[upto - 1]));
    if (out.length > limit) throw frameTooLarge('zstd', limit);
    if (whole) return out;
    known = out.length;
    done = upto;
  }
}

/**
 * The most one pass may decode to (3 frames decode at once in a restore
 * job): room for pgharbor's frames at every level in one pass, and for a
 * pass to add at least one block while what is known stays under the
 * frame limit.
 */
const PASS_BUDGET = 8 * FRAME_SIZE;
const MAX_PASSES = 32;

/** The frame's blocks up to `last` as a frame of their own: same window and dictionary, no checksum, no content size. */
function framePrefix(frame: Buffer, header: ZstdFrameHeader, last: ZstdBlock): Buffer {
  const descriptor = frame[4] & 0x03; // Dictionary_ID_flag kept; no content size, not single-segment, no checksum
  const dictionary = frame.subarray(5 + (header.singleSegment ? 0 : 1), 5 + (header.singleSegment ? 0 : 1) + header.dictionaryBytes);
  // A single-segment frame's window is its content size: here a window at least that large.
  const window = header.singleSegment ? Math.max(0, Math.ceil(Math.log2(Math.max(header.contentSize!, 1024))) - 10) << 3 : frame[5];
  const prefix = Buffer.concat([frame.subarray(0, 4), Buffer.from([descriptor, window]), dictionary, frame.subarray(header.size, last.end)]);
  prefix[prefix.length - (last.end - last.start)] |= 1; // Last_Block
  return prefix;
}
