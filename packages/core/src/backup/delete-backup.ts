import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { BackupEvent } from '../hooks.js';
import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { acquireLock } from '../repository/repository-lock.js';
import { displayStatus } from '../repository/backup-status.js';
import { resolveBackup } from '../restore/resolve-backup.js';

/**
 * Delete one backup (DONE or FAILED), with the delete hooks around it:
 * `backup.beforeDelete` may keep it (pre_delete_script runs there),
 * `backup.deleted` / `deleteFailed` observe (post_delete_script). The
 * `delete` command and retention both delete through here.
 */
export async function deleteBackup(
  harbor: Harbor,
  server: ServerHandle,
  backupId: string,
  options: { repo?: number } = {},
): Promise<{ manifest: BackupManifest; repository: Repository }> {
  const repository = await server.repository(options.repo);
  const manifest = await resolveBackup(repository, backupId);
  if (displayStatus(manifest) === 'STARTED') {
    throw new HarborError(`backup ${manifest.id} of ${server.name} is still running (pid ${manifest.process?.pid} on ${manifest.process?.hostname})`, {
      hint: 'wait for it to end, or stop that process first',
    });
  }
  const event: BackupEvent = { server: server.name, backupId: manifest.id, method: manifest.method, repository: repository.location };
  const veto = await harbor.hooks.backup.beforeDelete.promise(event);
  if (typeof veto === 'string') throw new HarborError(`deletion of backup ${manifest.id} of ${server.name} vetoed by a plugin: ${veto}`, { hint: 'see the plugin that refused it' });
  try {
    // The backup lock keeps delete from racing a backup that reuses files.
    const lock = await acquireLock(repository, 'backup', 'delete');
    try {
      await repository.deleteBackup(manifest.id);
    } finally {
      await lock.release();
    }
  } catch (error) {
    const failure = error instanceof HarborError ? error : new HarborError(`deleting backup ${manifest.id} of ${server.name} failed: ${errorMessage(error)}`, { cause: error });
    await harbor.hooks.backup.deleteFailed.promise(event, failure).catch(() => {});
    throw failure;
  }
  await harbor.hooks.backup.deleted.promise(event);
  return { manifest, repository };
}
