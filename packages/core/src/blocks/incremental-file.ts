import { HarborError } from '../errors.js';
import { BLOCK_SIZE } from './relation-file.js';

/**
 * PostgreSQL 17+'s incremental file (`INCREMENTAL.<relfile>`, sent by
 * `BASE_BACKUP (INCREMENTAL)`; src/include/backup/basebackup_incremental.h,
 * src/backend/backup/basebackup_incremental.c, pg_combinebackup's
 * reconstruct.c), in the server's byte order (little-endian here):
 *
 *   u32 magic 0xd3ae1f0d, u32 block count n, u32 truncation block length,
 *   n u32 block numbers (relative to the segment), padding to a multiple of
 *   BLCKSZ when n > 0, then the n blocks of BLCKSZ bytes in that order.
 *
 * The reconstructed file is `truncation block length` blocks long: a block
 * sent is taken from here, any other from the parent backup (zeros where
 * the parent's file was shorter, as pg_combinebackup does).
 *
 * The stream is another party's output: everything is checked against
 * what the server itself can produce (GetFileBackupMethod): counts within
 * a segment, block numbers increasing and below the truncation length,
 * and the entry exactly as long as its header says.
 */
export const INCREMENTAL_MAGIC = 0xd3ae1f0d;
/** RELSEG_SIZE of a default build: 1 GiB segments of 8 KiB blocks. */
export const SEGMENT_BLOCKS = 131072;
const PREFIX = 'INCREMENTAL.';

export interface IncrementalHeader {
  /** Blocks of the reconstructed file. */
  truncationBlocks: number;
  /** Block numbers sent, increasing. */
  blocks: Uint32Array;
  /** Bytes before the first block (header and padding). */
  headerLength: number;
}

/** `base/5/INCREMENTAL.16384.1` → `base/5/16384.1`; undefined for any other name. */
export function incrementalTarget(path: string): string | undefined {
  const slash = path.lastIndexOf('/');
  const name = path.slice(slash + 1);
  if (!name.startsWith(PREFIX) || name.length === PREFIX.length) return undefined;
  return `${path.slice(0, slash + 1)}${name.slice(PREFIX.length)}`;
}

/** The header's length for `count` blocks: 12 + 4 per block, padded to BLCKSZ when there are blocks. */
export function incrementalHeaderLength(count: number): number {
  const bare = 12 + 4 * count;
  return count > 0 && bare % BLOCK_SIZE !== 0 ? bare + BLOCK_SIZE - (bare % BLOCK_SIZE) : bare;
}

export class IncrementalFileError extends HarborError {
  constructor(path: string, reason: string) {
    super(`the server's incremental file ${path} ${reason}`, {
      hint: 'the stream is not what PostgreSQL sends (a proxy or another program answers on streaming_conninfo?); the backup is marked FAILED: take a full backup (--type full) if it persists',
    });
  }
}

/**
 * Read and check the header of an incremental file of `entrySize` bytes
 * from `read(n)` (exactly n bytes, or fewer at the end of the entry).
 */
export async function readIncrementalHeader(path: string, entrySize: number, read: (n: number) => Promise<Buffer>): Promise<IncrementalHeader> {
  if (entrySize < 12) throw new IncrementalFileError(path, `is ${entrySize} bytes long, shorter than its 12-byte header`);
  const fixed = await read(12);
  if (fixed.length !== 12) throw new IncrementalFileError(path, 'ends inside its header');
  const magic = fixed.readUInt32LE(0);
  if (magic !== INCREMENTAL_MAGIC) throw new IncrementalFileError(path, `has magic number 0x${magic.toString(16)}, not 0x${INCREMENTAL_MAGIC.toString(16)}`);
  const count = fixed.readUInt32LE(4);
  const truncationBlocks = fixed.readUInt32LE(8);
  if (count > SEGMENT_BLOCKS) throw new IncrementalFileError(path, `claims ${count} blocks, more than a segment holds (${SEGMENT_BLOCKS})`);
  if (truncationBlocks > SEGMENT_BLOCKS) throw new IncrementalFileError(path, `has a truncation length of ${truncationBlocks} blocks, more than a segment holds (${SEGMENT_BLOCKS})`);
  if (count > truncationBlocks) throw new IncrementalFileError(path, `claims ${count} blocks of a file of ${truncationBlocks}`);
  const headerLength = incrementalHeaderLength(count);
  const expected = headerLength + count * BLOCK_SIZE;
  if (entrySize !== expected) throw new IncrementalFileError(path, `is ${entrySize} bytes long, but its header (${count} blocks) makes it ${expected}`);
  const numbers = await read(headerLength - 12);
  if (numbers.length !== headerLength - 12) throw new IncrementalFileError(path, 'ends inside its header');
  const blocks = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const block = numbers.readUInt32LE(i * 4);
    if (block >= truncationBlocks) throw new IncrementalFileError(path, `sends block ${block}, beyond its length of ${truncationBlocks} blocks`);
    if (i > 0 && block <= blocks[i - 1]) throw new IncrementalFileError(path, `sends block ${block} after block ${blocks[i - 1]} (block numbers must increase)`);
    blocks[i] = block;
  }
  return { truncationBlocks, blocks, headerLength };
}
