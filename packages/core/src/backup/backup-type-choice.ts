import type { BackupManifest, BackupType } from '../repository/manifest.js';
import { displayStatus } from '../repository/backup-status.js';
import { parseAge } from '../retention/retention-checks.js';

export interface BackupTypeChoice {
  type: BackupType;
  /** Why the type differs from the configured one, for an INFO line. */
  reason?: string;
}

/**
 * The type of a backup: `--type` when given, else the server's
 * `backup_type` (default full); a configured diff or incr becomes a full
 * when there is no full backup yet, or the newest is older than
 * `full_backup_every` (pgBackRest's schedule of a weekly full and daily
 * incrementals, as one setting). Pure: the clock comes in as `now`.
 */
export function chooseBackupType(
  requested: BackupType | undefined,
  config: Record<string, unknown>, // the server section: backup_type, full_backup_every
  manifests: BackupManifest[],
  now: Date,
): BackupTypeChoice {
  if (requested) return { type: requested };
  const configured = (config.backup_type as BackupType | undefined) ?? 'full';
  if (configured === 'full') return { type: 'full' };
  const newestFull = manifests.filter((m) => displayStatus(m) === 'DONE' && m.type === 'full').at(-1);
  if (!newestFull) return { type: 'full', reason: `backup_type is ${configured}, but there is no full backup to build on yet` };
  const every = config.full_backup_every as string | undefined;
  if (every) {
    const ageSeconds = (now.getTime() - Date.parse(newestFull.stopTime ?? newestFull.startTime)) / 1000;
    if (ageSeconds >= parseAge(every)) {
      return { type: 'full', reason: `the newest full backup, ${newestFull.id}, is ${formatAge(ageSeconds)} old, and full_backup_every is ${every.trim()}` };
    }
  }
  return { type: configured };
}

function formatAge(seconds: number): string {
  return seconds >= 2 * 86400 ? `${Math.floor(seconds / 86400)} days` : `${Math.floor(seconds / 3600)} hours`;
}
