import { ConfigError, HarborError } from '../errors.js';
import { displayStatus } from '../repository/backup-status.js';
import { parseLsn } from '../postgres/wal.js';
import type { BackupManifest } from '../repository/manifest.js';

/** Where recovery stops: PostgreSQL's recovery_target_* settings. */
export interface RecoveryTarget {
  time?: string;
  xid?: string;
  lsn?: string;
  name?: string;
  immediate?: boolean;
  /** Stop just before the target instead of just after it (recovery_target_inclusive = off). */
  exclusive?: boolean;
  action?: 'pause' | 'promote' | 'shutdown';
  /** recovery_target_timeline: "latest", "current" or a number. */
  timeline?: string;
}

/** Reject malformed or contradictory targets before anything is written. */
export function validateRecoveryTarget(target: RecoveryTarget): void {
  const given = (['time', 'xid', 'lsn', 'name', 'immediate'] as const).filter((key) => target[key] !== undefined && target[key] !== false);
  if (given.length > 1) throw new ConfigError(`choose one recovery target, not ${given.map((g) => `--target-${g}`).join(' and ')}`, 'PostgreSQL stops at a single target');
  if (target.time !== undefined && Number.isNaN(targetTimeMs(target.time))) {
    throw new ConfigError(`--target-time "${target.time}" is not a time`, 'write it as PostgreSQL does, e.g. "2021-09-27 09:33:46.013798+00"');
  }
  if (target.lsn !== undefined) {
    try {
      parseLsn(target.lsn);
    } catch {
      throw new ConfigError(`--target-lsn "${target.lsn}" is not an LSN`, 'an LSN looks like 0/55000028');
    }
  }
  if (target.xid !== undefined && !/^\d+$/.test(target.xid)) throw new ConfigError(`--target-xid "${target.xid}" is not a transaction id`, 'give the number, e.g. 504');
  if (target.timeline !== undefined && !/^(latest|current|\d+)$/.test(target.timeline)) {
    throw new ConfigError(`--target-tli "${target.timeline}" is not a timeline`, 'use latest, current or a number');
  }
  if (target.action && given.length === 0) throw new ConfigError('--target-action needs a recovery target', 'add --target-time, --target-xid, --target-lsn, --target-name or --target-immediate');
}

/** Milliseconds since the epoch of a PostgreSQL-style timestamp ("2021-10-18 05:17:05.751485+00:00"). */
export function targetTimeMs(time: string): number {
  const iso = time.trim().replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00').replace(/ ?UTC$/, 'Z');
  const withZone = /[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + 'Z';
  return Date.parse(withZone);
}

export function hasTarget(target: RecoveryTarget): boolean {
  return Boolean(target.time ?? target.xid ?? target.lsn ?? target.name ?? target.immediate);
}

/**
 * The newest DONE backup from which the target can be reached: one that was
 * consistent (ended) before the target time or LSN.
 */
export function pickBackupForTarget(backups: BackupManifest[], target: RecoveryTarget): BackupManifest | undefined {
  const done = backups.filter((b) => displayStatus(b) === 'DONE');
  const usable = done.filter((b) => reachable(b, target));
  return usable.at(-1);
}

function reachable(backup: BackupManifest, target: RecoveryTarget): boolean {
  if (target.time !== undefined && backup.stopTime) return Date.parse(backup.stopTime) <= targetTimeMs(target.time);
  if (target.lsn !== undefined && backup.stopLsn) return parseLsn(backup.stopLsn) <= parseLsn(target.lsn);
  return true;
}

/** A target before the backup became consistent cannot be reached from it. */
export function assertTargetReachable(backup: BackupManifest, target: RecoveryTarget): void {
  if (target.time !== undefined && backup.stopTime && !reachable(backup, target)) {
    throw new HarborError(`--target-time ${target.time} is before backup ${backup.id} was consistent`, {
      hint: `the earliest target this backup reaches is ${backup.stopTime}; choose an older backup (or "latest" to let pgharbor pick one)`,
      exitCode: 2,
    });
  }
  if (target.lsn !== undefined && backup.stopLsn && !reachable(backup, target)) {
    throw new HarborError(`--target-lsn ${target.lsn} is before backup ${backup.id} was consistent`, {
      hint: `the earliest target LSN this backup reaches is ${backup.stopLsn}; choose an older backup`,
      exitCode: 2,
    });
  }
}
