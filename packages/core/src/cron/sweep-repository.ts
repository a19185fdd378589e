import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { Repository } from '../repository/repository.js';
import { acquireLock } from '../repository/repository-lock.js';
import { BusyLockError } from '../lock/lock.js';
import { displayStatus } from '../repository/backup-status.js';
import { deleteBackup, finishPendingDeletions } from '../backup/delete-backup.js';

export interface SweepResult {
  /** Interrupted deletions finished. */
  finished: string[];
  /** FAILED backups removed (including those whose writer was killed). */
  failed: string[];
  /** Set when the backup lock was busy (a backup, delete or expire runs): nothing was swept. */
  skipped?: string;
}

/**
 * cron's sweep of one repository, under the server's backup lock (so that
 * no backup is being written): finish deletions that were interrupted, and
 * remove FAILED backups older than the newest DONE one, including those
 * left STARTED by a writer that is gone. Removing a backup's prefix whole (deletePrefix) also removes what a
 * killed writer left that no listing shows: posix temp files, unfinished
 * S3 multipart uploads. A busy lock is no error: the next pass sweeps.
 */
export async function sweepRepository(harbor: Harbor, server: ServerHandle, repository: Repository): Promise<SweepResult> {
  let lock;
  try {
    lock = await acquireLock(repository, 'backup', 'cron');
  } catch (error) {
    if (error instanceof BusyLockError) return { finished: [], failed: [], skipped: error.message };
    throw error;
  }
  try {
    const finished = await finishPendingDeletions(harbor, repository);
    const failed: string[] = [];
    const manifests = await repository.listManifests();
    // A failure stays listed (with its error) until a later backup succeeds: "the last backup
    // failed" is what an operator must see, as Barman keeps showing it. Its files go then.
    const newestDone = manifests.filter((m) => displayStatus(m) === 'DONE').at(-1)?.id;
    for (const manifest of manifests) {
      if (displayStatus(manifest) !== 'FAILED' || newestDone === undefined || manifest.id > newestDone) continue;
      const reason = `FAILED${manifest.error ? ` (${manifest.error.message})` : ''}`;
      await deleteBackup(harbor, server, manifest.id, { repo: repository.index, force: true, withDependents: true, locked: true, operation: 'cron', reason });
      harbor.logger.info(`removed backup ${manifest.id} of ${server.name} from ${repository.name}: ${reason}`);
      failed.push(manifest.id);
    }
    return { finished, failed };
  } finally {
    await lock.release();
  }
}
