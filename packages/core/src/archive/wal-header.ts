/**
 * The first page of every WAL segment starts with a long page header
 * (XLogLongPageHeaderData): magic (uint16, per major version), info,
 * timeline, page address, remaining length, then at byte 24 the system
 * identifier (uint64) and at 32 the segment size. Reading it lets
 * archive-push refuse a segment of another cluster without a database
 * connection, as pgBackRest does.
 */
export interface WalSegmentHeader {
  magic: number;
  timeline: number;
  systemIdentifier: string;
  segmentSize: number;
  /** PostgreSQL major version the magic number belongs to, when known. */
  pgMajor?: number;
}

// XLOG_PAGE_MAGIC by major version (src/include/access/xlog_internal.h).
const magicToMajor: Record<number, number> = {
  0xd101: 11, 0xd104: 12, 0xd106: 13, 0xd10d: 14, 0xd110: 15, 0xd113: 16, 0xd116: 17, 0xd118: 18,
};

const XLP_LONG_HEADER = 0x0002;

export function readWalSegmentHeader(firstBytes: Buffer): WalSegmentHeader | undefined {
  if (firstBytes.length < 40) return undefined;
  const info = firstBytes.readUInt16LE(2);
  if (!(info & XLP_LONG_HEADER)) return undefined;
  const magic = firstBytes.readUInt16LE(0);
  return {
    magic,
    timeline: firstBytes.readUInt32LE(4),
    systemIdentifier: firstBytes.readBigUInt64LE(24).toString(),
    segmentSize: firstBytes.readUInt32LE(32),
    pgMajor: magicToMajor[magic],
  };
}
