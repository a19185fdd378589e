import { DecodeBoundError, type ExpectedSize } from '../codec/decode-bounds.js';
import { walFileKind } from './wal-file-name.js';
import { readWalSegmentHeader } from './wal-header.js';

/**
 * The size an archived WAL file may decode to, known before it is read
 * (decode-bounds.ts), so that a forged object is refused as it decodes:
 *
 * - a segment (or .partial) is at most 1 GiB, PostgreSQL's largest
 *   wal_segment_size, until its first page is decoded; from then on its own
 *   long page header says: xlp_seg_size, exactly that for a segment (a
 *   .partial at most: pg_receivewal pads it, PostgreSQL's copy at promotion
 *   is whole, but shorter is what the name means). archive-push and
 *   receive-wal store no segment without that header.
 * - a timeline history or backup history file is text of a few hundred
 *   bytes (a line per timeline switch): 16 MiB is far beyond any.
 */
export function walDecodeBound(name: string): ExpectedSize {
  return isSegment(name) ? { bytes: MAX_WAL_SEGMENT, exact: false } : { bytes: MAX_WAL_TEXT_FILE, exact: false };
}

/** PostgreSQL's largest wal_segment_size (initdb --wal-segsize=1024). */
export const MAX_WAL_SEGMENT = 1024 * 1024 * 1024;
const MIN_WAL_SEGMENT = 1024 * 1024;
const MAX_WAL_TEXT_FILE = 16 * 1024 * 1024;
/** XLogLongPageHeaderData: xlp_seg_size is at 32, 4 bytes. */
const LONG_HEADER = 40;

/**
 * A WAL file's decoded bytes, named in any bound's error ("stored NAME
 * decodes to more than ..."); a segment's checked against the segment size
 * in its own first page header: a header that names no valid size fails,
 * and so do more bytes than it names (as soon as they come) or, for a
 * segment, fewer.
 */
export async function* boundWalFile(name: string, decoded: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* isSegment(name) ? checkSegmentSize(name, decoded) : decoded;
  } catch (error) {
    throw error instanceof DecodeBoundError ? new DecodeBoundError(`stored ${name} ${error.message}`) : error;
  }
}

async function* checkSegmentSize(name: string, decoded: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const head: Buffer[] = [];
  let total = 0;
  let segmentSize: number | undefined;
  for await (const chunk of decoded) {
    total += chunk.length;
    if (segmentSize === undefined) {
      head.push(chunk);
      if (total < LONG_HEADER) continue;
      segmentSize = headerSegmentSize(head.length === 1 ? chunk : Buffer.concat(head));
    }
    if (total > segmentSize) throw new DecodeBoundError(`decodes to more than ${segmentSize} bytes, the segment size its page header gives`);
    if (head.length) yield* head.splice(0);
    else yield chunk;
  }
  if (segmentSize === undefined) throw new DecodeBoundError(`decodes to ${total} bytes, too few for a WAL page header (truncated)`);
  if (walFileKind(name) === 'segment' && total !== segmentSize) throw new DecodeBoundError(`decodes to ${total} bytes, not ${segmentSize}, the segment size its page header gives (truncated)`);
}

function headerSegmentSize(first: Buffer): number {
  const size = readWalSegmentHeader(first)?.segmentSize;
  // PostgreSQL's IsValidWalSegSize: a power of two from 1 MiB to 1 GiB.
  if (size === undefined || size < MIN_WAL_SEGMENT || size > MAX_WAL_SEGMENT || (size & (size - 1)) !== 0) {
    throw new DecodeBoundError('does not start with a WAL page header that gives a valid segment size');
  }
  return size;
}

function isSegment(name: string): boolean {
  const kind = walFileKind(name);
  return kind === 'segment' || kind === 'partial';
}
