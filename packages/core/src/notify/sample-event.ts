import { backupIdFor } from '../repository/backup-id.js';
import type { EventFields, EventName } from './events.js';

/** Plausible fields for a sample of each event (`pgharbor notify-test`), so a receiver's formatting can be checked too. */
export function sampleEventFields(name: EventName, server: string, method: string): EventFields {
  const now = new Date();
  const backup = { server, backupId: backupIdFor(now), method, repository: '/var/lib/pgharbor' };
  const error = { message: 'this is a test notification from pgharbor notify-test', hint: 'nothing to do: nothing failed' };
  const failing = { failingSince: new Date(now.getTime() - 5 * 60_000).toISOString(), failures: 3 };
  switch (name) {
    case 'backup.started':
      return { ...backup, label: `pgharbor backup ${backup.backupId}`, startTime: now.toISOString() };
    case 'backup.succeeded':
      return { ...backup, startTime: now.toISOString(), endTime: now.toISOString(), seconds: 0, size: 0, storedSize: 0, files: 0 };
    case 'backup.failed':
      return { ...backup, error };
    case 'archive.failed':
      return { server, walFile: '000000010000000000000001', ...failing, error };
    case 'archive.recovered':
      return { server, walFile: '000000010000000000000001', ...failing };
    case 'receive-wal.stopped':
      return { server, state: 'failed', ...failing, error };
    case 'retention.expired':
      return { server, repository: backup.repository, kind: 'backup', subject: backup.backupId, reason: 'sample' };
    case 'restore.succeeded':
      return { ...backup, destination: '/var/lib/postgresql/restore', files: 0, size: 0, seconds: 0 };
    case 'restore.failed':
      return { ...backup, destination: '/var/lib/postgresql/restore', error };
    case 'check.failed':
      return { server, checks: [{ name: 'sample check', detail: error.message, hint: error.hint }] };
  }
}
