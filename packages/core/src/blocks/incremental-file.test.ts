import { describe, expect, it } from 'vitest';
import { INCREMENTAL_MAGIC, IncrementalFileError, SEGMENT_BLOCKS, incrementalHeaderLength, incrementalTarget, readIncrementalHeader } from './incremental-file.js';

/** An incremental file's header as PostgreSQL writes it (little-endian, padded to 8 KiB when it has blocks). */
function header(blocks: number[], truncation: number, options: { magic?: number; count?: number } = {}): Buffer {
  const bytes = Buffer.alloc(incrementalHeaderLength(blocks.length));
  bytes.writeUInt32LE(options.magic ?? INCREMENTAL_MAGIC, 0);
  bytes.writeUInt32LE(options.count ?? blocks.length, 4);
  bytes.writeUInt32LE(truncation, 8);
  blocks.forEach((block, i) => bytes.writeUInt32LE(block, 12 + 4 * i));
  return bytes;
}

function reader(bytes: Buffer): (n: number) => Promise<Buffer> {
  let at = 0;
  return async (n) => {
    const part = bytes.subarray(at, at + n);
    at += part.length;
    return part;
  };
}

const parse = (bytes: Buffer, entrySize: number) => readIncrementalHeader('base/5/INCREMENTAL.16384', entrySize, reader(bytes));

describe('incremental file header', () => {
  it('reads what PostgreSQL writes', async () => {
    const bytes = header([0, 7, 42], 100);
    const parsed = await parse(bytes, 8192 + 3 * 8192);
    expect(parsed).toEqual({ truncationBlocks: 100, blocks: Uint32Array.from([0, 7, 42]), headerLength: 8192 });
    expect(await parse(header([], 5), 12)).toEqual({ truncationBlocks: 5, blocks: new Uint32Array(0), headerLength: 12 });
    // 2045 block numbers fill one block exactly; 2046 spill into a second.
    expect(incrementalHeaderLength(2045)).toBe(8192);
    expect(incrementalHeaderLength(2046)).toBe(16384);
  });

  it('names the file it completes', () => {
    expect(incrementalTarget('base/5/INCREMENTAL.16384')).toBe('base/5/16384');
    expect(incrementalTarget('pg_tblspc/16385/PG_17_202406281/5/INCREMENTAL.16384_vm.1')).toBe('pg_tblspc/16385/PG_17_202406281/5/16384_vm.1');
    expect(incrementalTarget('base/5/16384')).toBeUndefined();
    expect(incrementalTarget('base/5/INCREMENTAL.')).toBeUndefined();
  });

  it.each<[string, Buffer, number, RegExp]>([
    ['bad magic', header([], 5, { magic: 0xdeadbeef }), 12, /has magic number 0xdeadbeef, not 0xd3ae1f0d/],
    ['shorter than a header', Buffer.alloc(8), 8, /is 8 bytes long, shorter than its 12-byte header/],
    ['a block count beyond a segment', header([], 5, { count: SEGMENT_BLOCKS + 1 }), 12, /claims 131073 blocks, more than a segment holds/],
    ['a truncation length beyond a segment', header([], SEGMENT_BLOCKS + 1), 12, /truncation length of 131073 blocks/],
    ['more blocks than the file has', header([0, 1, 2], 2), 8192 + 3 * 8192, /claims 3 blocks of a file of 2/],
    ['a block number beyond the file', header([0, 9], 5), 8192 + 2 * 8192, /sends block 9, beyond its length of 5 blocks/],
    ['block numbers not increasing', header([3, 1], 5), 8192 + 2 * 8192, /sends block 1 after block 3/],
    ['a repeated block', header([3, 3], 5), 8192 + 2 * 8192, /sends block 3 after block 3/],
    ['blocks cut short (entry shorter than its header says)', header([1], 5), 8192 + 100, /is 8292 bytes long, but its header \(1 blocks\) makes it 16384/],
    ['trailing bytes after its blocks', header([1], 5), 8192 + 8192 + 1, /is 16385 bytes long, but its header \(1 blocks\) makes it 16384/],
    ['a header cut inside its block list', header([1, 2], 5).subarray(0, 14), 8192 + 2 * 8192, /ends inside its header/],
  ])('refuses %s', async (_name, bytes, entrySize, message) => {
    const error = await parse(bytes, entrySize).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncrementalFileError);
    expect((error as Error).message).toMatch(message);
    expect((error as IncrementalFileError).hint).toMatch(/marked FAILED/);
  });
});
