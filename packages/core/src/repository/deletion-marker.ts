import os from 'node:os';

/**
 * `<server>/deleting/<id>`: written before a deletion removes
 * anything and removed after the manifest. While it is there the backup is
 * DELETING: listed, never restorable, not counted by retention, and the next
 * `delete`, `expire` or `cron` finishes the deletion (a deletion killed
 * half-way otherwise leaves bundles that no command lists or removes).
 */
export interface DeletionMarker {
  /** When the deletion began. */
  since: string;
  /** Which command began it: delete, expire, cron. */
  operation: string;
  pid: number;
  hostname: string;
  /** Why, for retention ("obsolete: …"), failed or interrupted backups. */
  reason?: string;
}

export function newDeletionMarker(operation: string, reason?: string): DeletionMarker {
  return { since: new Date().toISOString(), operation, pid: process.pid, hostname: os.hostname(), ...(reason ? { reason } : {}) };
}
