/**
 * LSNs and WAL file names. An LSN "X/Y" is a 64-bit position; the WAL file
 * holding it is named TTTTTTTTXXXXXXXXYYYYYYYY (timeline, log, segment) for
 * 16 MiB segments unless wal_segment_size says otherwise.
 */
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;

export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!match) throw new Error(`invalid LSN "${lsn}"`);
  return (BigInt('0x' + match[1]) << 32n) | BigInt('0x' + match[2]);
}

export function formatLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function walFileName(timeline: number, lsn: string | bigint, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): string {
  const position = typeof lsn === 'bigint' ? lsn : parseLsn(lsn);
  const segment = position / BigInt(segmentSize);
  const segmentsPerLog = 0x100000000n / BigInt(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(timeline) + hex(segment / segmentsPerLog) + hex(segment % segmentsPerLog);
}

/** The WAL file containing the last byte before `lsn` (an end LSN on a segment boundary belongs to the previous file). */
export function walFileBefore(timeline: number, lsn: string, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): string {
  const position = parseLsn(lsn);
  return walFileName(timeline, position > 0n ? position - 1n : 0n, segmentSize);
}

const segmentPattern = /^[0-9A-F]{24}$/;
export function isWalSegmentName(name: string): boolean {
  return segmentPattern.test(name);
}

/** The segment after `name` (same timeline). */
export function nextSegment(name: string, walSegmentSize = DEFAULT_WAL_SEGMENT_SIZE): string {
  const segmentsPerLog = 0x100000000n / BigInt(walSegmentSize);
  const segno = BigInt('0x' + name.slice(8, 16)) * segmentsPerLog + BigInt('0x' + name.slice(16, 24));
  return walFileName(parseInt(name.slice(0, 8), 16), (segno + 1n) * BigInt(walSegmentSize), walSegmentSize);
}
