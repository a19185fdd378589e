/**
 * The LZ4 block format's decoder loop: sequences of literals and matches,
 * read from one block of a frame and written into the frame's output
 * (lz4-decode.ts reads the frame around it, and says why this is
 * TypeScript rather than WebAssembly).
 *
 * Every sequence is bounds-checked against the block and the output, and
 * every match offset against the output written so far, so a damaged block
 * throws (or decodes to other bytes, which the frame's checksums, if any,
 * and the restore's hashes catch). It never relies on typed arrays
 * ignoring reads and writes out of bounds.
 *
 * Why it is shaped so, step by step on 1 MiB frames of a pgbench pkey
 * index (11 output bytes per sequence on average), MiB/s:
 *   a method call per literal run and per match, byte loops     620
 *   one loop over locals, byte loops                            660
 *   matches copied 4 bytes at a time through a DataView       1,100
 *   a fast path that checks only the offset for most sequences 1,300
 *   int32 arithmetic, no loops in the fast path               1,630
 * Literal runs are mostly 0 or 1 byte there: byte copies are as fast as
 * anything. Long runs (heap pages: zeros, fillers) go to Buffer.copy and
 * copyWithin, native memmoves.
 *
 * One thing outside this file costs 30%: once anything in the process
 * detaches an ArrayBuffer (a WebAssembly memory growing, a transfer), V8
 * checks every typed-array access for it. A restore detaches none (seen
 * with node --trace-protector-invalidation).
 */

/** What decodeLz4Block returns when the block does not fit below `limit`: nothing after `op` is to be trusted then. */
export const OUT_OF_ROOM = -1;

/**
 * The fast path needs this much room: a token, up to 14 literals and a
 * 2-byte offset inside the block; up to 14 literals and an 18-byte match
 * copied 4 bytes at a time (20) inside the output.
 */
const FAST_INPUT = 20;
const FAST_OUTPUT = 40;
/** Copies up to this long run as byte or 4-byte loops: a native copy costs more than it saves below. */
const SHORT_LITERALS = 32;
const SHORT_MATCH = 64;

/**
 * Decodes the block src[ip, end) into out from `op`, writing nothing at or
 * past `limit` (≤ out.length), with matches reaching back no further than
 * `windowStart` (the block's own start when blocks are independent).
 * `view` is a DataView of exactly `out`. Returns the end of the output.
 */
export function decodeLz4Block(src: Buffer, ip: number, end: number, out: Buffer, view: DataView, op: number, limit: number, windowStart: number): number {
  // int32 from the start, so that V8 keeps the loop's variables untagged in registers (+10% on index data), and `| 0`
  // below spares it overflow checks (+6%): lz4-decode.ts keeps outputs below 2^30 bytes.
  ip |= 0;
  op |= 0;
  end |= 0;
  limit |= 0;
  windowStart |= 0;
  const fastInputEnd = (end - FAST_INPUT) | 0;
  const fastOutputEnd = (limit - FAST_OUTPUT) | 0;
  for (;;) {
    // Fast path, most sequences of data with many short matches (btree
    // indexes): short literals and a short match, far enough from the ends
    // of both buffers that no bound needs checking but the match offset.
    // No loop in it: after a loop's interrupt check V8 reloads every
    // buffer's pointer and length (a switch and unrolled copies: +7%).
    if (ip <= fastInputEnd && op <= fastOutputEnd) {
      const token = src[ip];
      const literals = token >>> 4;
      const length = (token & 15) + 4;
      if (literals !== 15 && length !== 19) {
        ip = (ip + 1) | 0;
        switch (literals) {
          case 14: out[(op + 13) | 0] = src[(ip + 13) | 0]; // falls through
          case 13: out[(op + 12) | 0] = src[(ip + 12) | 0]; // falls through
          case 12: out[(op + 11) | 0] = src[(ip + 11) | 0]; // falls through
          case 11: out[(op + 10) | 0] = src[(ip + 10) | 0]; // falls through
          case 10: out[(op + 9) | 0] = src[(ip + 9) | 0]; // falls through
          case 9: out[(op + 8) | 0] = src[(ip + 8) | 0]; // falls through
          case 8: out[(op + 7) | 0] = src[(ip + 7) | 0]; // falls through
          case 7: out[(op + 6) | 0] = src[(ip + 6) | 0]; // falls through
          case 6: out[(op + 5) | 0] = src[(ip + 5) | 0]; // falls through
          case 5: out[(op + 4) | 0] = src[(ip + 4) | 0]; // falls through
          case 4: out[(op + 3) | 0] = src[(ip + 3) | 0]; // falls through
          case 3: out[(op + 2) | 0] = src[(ip + 2) | 0]; // falls through
          case 2: out[(op + 1) | 0] = src[(ip + 1) | 0]; // falls through
          case 1: out[op] = src[ip];
        }
        op = (op + literals) | 0;
        ip = (ip + literals) | 0;
        const offset = src[ip] | (src[(ip + 1) | 0] << 8);
        ip = (ip + 2) | 0;
        if (offset > ((op - windowStart) | 0) || offset === 0) throw new Error('lz4 block is damaged (match offset out of range)');
        let from = (op - offset) | 0;
        if (offset >= 4) {
          // 4 bytes at a time, the last copy maybe past the match's end (what follows overwrites it);
          // right for overlapping matches too, as each read is of bytes already written.
          view.setInt32(op, view.getInt32(from, true), true);
          if (length > 4) {
            view.setInt32((op + 4) | 0, view.getInt32((from + 4) | 0, true), true);
            view.setInt32((op + 8) | 0, view.getInt32((from + 8) | 0, true), true);
            if (length > 12) {
              view.setInt32((op + 12) | 0, view.getInt32((from + 12) | 0, true), true);
              if (length > 16) view.setInt32((op + 16) | 0, view.getInt32((from + 16) | 0, true), true);
            }
          }
          op = (op + length) | 0;
        } else {
          const stop = op + length;
          while (op < stop) out[op++] = out[from++];
        }
        continue;
      }
    }

    if (ip >= end) throw new Error('lz4 block is damaged (ends without literals)');
    const token = src[ip++];
    let literals = token >>> 4;
    if (literals === 15) {
      let more: number;
      do {
        if (ip >= end) throw new Error('lz4 block is damaged (literal length)');
        more = src[ip++];
        literals += more;
      } while (more === 255);
    }
    if (literals > end - ip) throw new Error('lz4 block is damaged (literals past its end)');
    if (literals > limit - op) return OUT_OF_ROOM;
    if (literals < SHORT_LITERALS) {
      for (let i = 0; i < literals; i++) out[op + i] = src[ip + i];
    } else src.copy(out, op, ip, ip + literals);
    op += literals;
    ip += literals;
    if (ip === end) return op; // the last sequence has literals only

    if (end - ip < 2) throw new Error('lz4 block is damaged (match offset)');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    let length = token & 15;
    if (length === 15) {
      let more: number;
      do {
        if (ip >= end) throw new Error('lz4 block is damaged (match length)');
        more = src[ip++];
        length += more;
      } while (more === 255);
    }
    length += 4;
    if (offset > op - windowStart || offset === 0) throw new Error('lz4 block is damaged (match offset out of range)');
    if (length > limit - op) return OUT_OF_ROOM;
    let from = op - offset;
    if (offset >= 4 && length <= SHORT_MATCH && length + 3 <= limit - op) {
      for (let n = 0; n < length; n += 4) view.setInt32(op + n, view.getInt32(from + n, true), true);
      op += length;
    } else if (offset >= length) {
      out.copyWithin(op, from, from + length);
      op += length;
    } else if (length < SHORT_LITERALS) {
      const stop = op + length;
      while (op < stop) out[op++] = out[from++];
    } else {
      // Long and overlapping (a run of a short pattern): the pattern doubles with every copy.
      const stop = op + length;
      while (op < stop) {
        const n = Math.min(stop - op, op - from);
        out.copyWithin(op, from, from + n);
        op += n;
      }
    }
  }
}
