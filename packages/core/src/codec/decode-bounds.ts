/**
 * What a decoder may produce, known before a byte is read: a repository's
 * objects can be written by others than pgharbor (docs/security.md), and a
 * few kilobytes of zstd or lz4 can claim gigabytes. Three bounds hold
 * every decoder in this folder:
 *
 * - a frame decodes to at most FRAME_SIZE bytes: the writer (stream-codec.ts
 *   Encoder) cuts originals into frames of that size, so a frame that
 *   declares or produces more was not written by pgharbor;
 * - a frame is stored in at most MAX_STORED_FRAME bytes: the splitter
 *   (frames.ts) never buffers more waiting for a frame's end;
 * - an object decodes to exactly its known size (a backup file: its
 *   manifest `size`), or at most a known bound (a WAL file), checked as the
 *   bytes come out (countDecoded).
 */

/** Original bytes per compressed frame: bounds memory and lets frames compress in parallel. */
export const FRAME_SIZE = 1024 * 1024;

/**
 * The most a frame of FRAME_SIZE original bytes is stored in: incompressible
 * blocks are stored as they are (zstd's compressBound is FRAME_SIZE + 4 KiB,
 * lz4's frame bound FRAME_SIZE + 15), headers and checksums are bytes; 64 KiB
 * leaves room to spare.
 */
export const MAX_STORED_FRAME = FRAME_SIZE + 64 * 1024;

/** How many bytes an object decodes to. */
export interface ExpectedSize {
  bytes: number;
  /** true: exactly `bytes` (a backup file's manifest size); false: at most `bytes` (a WAL file, before its header names its size). */
  exact: boolean;
}

/**
 * Stored data past one of these bounds: damaged or forged. Its message
 * goes after the object's name, given by whoever knows it (backup-codec.ts,
 * wal-size.ts): "decodes to more than the 8192 bytes expected".
 */
export class DecodeBoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeBoundError';
  }
}

/** A frame that produces or declares more than `limit` (lz4-decode.ts, zstd-decode.ts). */
export function frameTooLarge(kind: 'lz4' | 'zstd', limit: number, declared?: number): DecodeBoundError {
  const what = declared === undefined ? `decodes to more than ${limit} bytes` : `declares ${declared} bytes of content, more than ${limit}`;
  return new DecodeBoundError(`has ${kind === 'lz4' ? 'an' : 'a'} ${kind} frame that ${what}${limit === FRAME_SIZE ? ' (pgharbor writes at most 1 MiB per frame)' : ''}`);
}

/**
 * The decoded chunks of one object, passed through while they add up to
 * no more than expected; fails before yielding the chunk that goes past
 * it, and at the end when an exact size was not reached (a truncated
 * object). Without `expected`, chunks pass as they are.
 */
export async function* countDecoded(source: AsyncIterable<Buffer>, expected: ExpectedSize | undefined): AsyncGenerator<Buffer> {
  if (!expected) {
    yield* source;
    return;
  }
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > expected.bytes) throw new DecodeBoundError(`decodes to more than the ${expected.bytes} bytes ${expected.exact ? 'expected' : 'it may have'}`);
    yield chunk;
  }
  if (expected.exact && total !== expected.bytes) throw new DecodeBoundError(`decodes to ${total} bytes, not the ${expected.bytes} expected (truncated)`);
}
