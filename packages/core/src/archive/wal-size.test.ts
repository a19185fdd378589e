import { describe, expect, it } from 'vitest';
import { boundWalFile, walDecodeBound } from './wal-size.js';

const MiB = 1024 * 1024;

/** A segment of `size` bytes whose long page header gives `segmentSize`. */
function segment(size: number, segmentSize: number): Buffer {
  const bytes = Buffer.alloc(size);
  bytes.writeUInt16LE(0xd110, 0); // PostgreSQL 15's page magic
  bytes.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  bytes.writeUInt32LE(1, 4);
  bytes.writeUInt32LE(segmentSize, 32);
  return bytes;
}

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function length(source: AsyncIterable<Buffer>): Promise<number> {
  let total = 0;
  for await (const chunk of source) total += chunk.length;
  return total;
}

const NAME = '000000010000000000000003';

describe('archived WAL decodes to the size it must have', () => {
  it('a segment: exactly the size its page header gives, whatever the chunking (even a header split over chunks)', async () => {
    for (const chunk of [7, 64 * 1024]) expect(await length(boundWalFile(NAME, chunked(segment(MiB, MiB), chunk)))).toBe(MiB);
  });

  it('a segment longer or shorter than its header says, or without a valid header, fails naming it', async () => {
    await expect(length(boundWalFile(NAME, chunked(segment(2 * MiB, MiB), 64 * 1024)))).rejects.toThrow(`stored ${NAME} decodes to more than 1048576 bytes, the segment size its page header gives`);
    await expect(length(boundWalFile(NAME, chunked(segment(MiB - 1, MiB), 64 * 1024)))).rejects.toThrow(`stored ${NAME} decodes to 1048575 bytes, not 1048576, the segment size its page header gives (truncated)`);
    await expect(length(boundWalFile(NAME, chunked(segment(MiB, 3 * MiB), 64 * 1024)))).rejects.toThrow(`stored ${NAME} does not start with a WAL page header that gives a valid segment size`);
    await expect(length(boundWalFile(NAME, chunked(Buffer.alloc(MiB), 64 * 1024)))).rejects.toThrow(/does not start with a WAL page header/);
    await expect(length(boundWalFile(NAME, chunked(Buffer.alloc(20), 64 * 1024)))).rejects.toThrow(`stored ${NAME} decodes to 20 bytes, too few for a WAL page header (truncated)`);
  });

  it('a .partial may be shorter than its segment size, never longer', async () => {
    expect(await length(boundWalFile(`${NAME}.partial`, chunked(segment(MiB / 2, MiB), 64 * 1024)))).toBe(MiB / 2);
    await expect(length(boundWalFile(`${NAME}.partial`, chunked(segment(2 * MiB, MiB), 64 * 1024)))).rejects.toThrow(/decodes to more than 1048576 bytes/);
  });

  it('bounds before the header is read: 1 GiB for segments, 16 MiB for history and backup history files', () => {
    expect(walDecodeBound(NAME)).toEqual({ bytes: 1024 * MiB, exact: false });
    expect(walDecodeBound('00000002.history')).toEqual({ bytes: 16 * MiB, exact: false });
    expect(walDecodeBound(`${NAME}.00000028.backup`)).toEqual({ bytes: 16 * MiB, exact: false });
  });
});
