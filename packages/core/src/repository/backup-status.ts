import os from 'node:os';
import type { BackupManifest } from './manifest.js';
import { isAlive } from '../lock/lock.js';

/**
 * The status a user should see. A manifest left STARTED by a process that
 * no longer exists (killed, crashed, machine rebooted) is a failed backup,
 * whatever the file says. A backup whose deletion began (its deletion
 * marker is there) is DELETING, whatever its manifest says: never restorable.
 */
export type DisplayStatus = 'DONE' | 'FAILED' | 'STARTED' | 'DELETING';

export function displayStatus(manifest: BackupManifest): DisplayStatus {
  if (manifest.deleting) return 'DELETING';
  if (manifest.status !== 'STARTED') return manifest.status;
  return isOrphan(manifest) ? 'FAILED' : 'STARTED';
}

export function isOrphan(manifest: BackupManifest): boolean {
  if (manifest.status !== 'STARTED' || !manifest.process) return false;
  return manifest.process.hostname === os.hostname() && !isAlive(manifest.process.pid);
}

export function orphanError(manifest: BackupManifest): { message: string; hint: string } {
  return {
    message: `interrupted: process ${manifest.process?.pid} on ${manifest.process?.hostname} ended before the backup completed`,
    hint: 'this backup is not restorable; delete it and take a new one',
  };
}
