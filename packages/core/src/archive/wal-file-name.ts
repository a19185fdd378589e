/**
 * The file names PostgreSQL hands to archive_command / restore_command:
 *   000000010000000000000055                  a segment
 *   000000010000000000000055.partial          the unfinished segment of a receiver or a promoted timeline
 *   000000010000000000000055.00000028.backup  a backup history file
 *   00000002.history                          a timeline history file
 */
export type WalFileKind = 'segment' | 'partial' | 'backup' | 'history';

const patterns: [WalFileKind, RegExp][] = [
  ['segment', /^[0-9A-F]{24}$/],
  ['partial', /^[0-9A-F]{24}\.partial$/],
  ['backup', /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/],
  ['history', /^[0-9A-F]{8}\.history$/],
];

export function walFileKind(name: string): WalFileKind | undefined {
  return patterns.find(([, pattern]) => pattern.test(name))?.[0];
}

/** Timeline of any WAL file name, from its first 8 hex digits. */
export function walFileTimeline(name: string): number {
  return parseInt(name.slice(0, 8), 16);
}
