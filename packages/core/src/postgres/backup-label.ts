/**
 * backup_label, as PostgreSQL writes it at the start of a base backup:
 *   START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
 *   CHECKPOINT LOCATION: 0/2000060
 *   START TIME: 2026-11-25 14:00:00 UTC
 *   START TIMELINE: 1
 */
export interface BackupLabel {
  startLsn: string;
  startWal: string;
  checkpointLsn?: string;
  startTime?: Date;
  timeline: number;
  label?: string;
}

export function parseBackupLabel(text: string): BackupLabel {
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(text);
  if (!start) throw new Error('backup_label has no START WAL LOCATION line');
  const time = field('START TIME');
  return {
    startLsn: start[1],
    startWal: start[2],
    checkpointLsn: field('CHECKPOINT LOCATION'),
    startTime: time ? new Date(time.replace(' UTC', 'Z').replace(' ', 'T')) : undefined,
    timeline: Number(field('START TIMELINE') ?? start[2].slice(0, 8)),
    label: field('LABEL'),
  };
}
