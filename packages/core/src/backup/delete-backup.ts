import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { BackupEvent } from '../hooks.js';
import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { acquireLock } from '../repository/repository-lock.js';
import { displayStatus } from '../repository/backup-status.js';
import { resolveBackup } from '../restore/resolve-backup.js';
import { newDeletionMarker } from '../repository/deletion-marker.js';
import { isBackupId } from '../repository/backup-id.js';
import { InvalidManifestError } from '../repository/manifest-validate.js';
import { dependentsOf } from '../repository/backup-chain.js';

/**
 * Delete one backup (DONE, FAILED, or DELETING: an interrupted deletion is
 * finished), with the delete hooks around it:
 * `backup.beforeDelete` may keep it (pre_delete_script runs there),
 * `backup.deleted` / `deleteFailed` observe (post_delete_script). The
 * `delete` command and retention both delete through here.
 */
export async function deleteBackup(
  harbor: Harbor,
  server: ServerHandle,
  backupId: string,
  options: {
    repo?: number;
    /** Delete even below minimum_redundancy. */
    force?: boolean;
    /**
     * Delete the backups that depend on it too (incrementals, differentials,
     * backups reusing its files), newest first: without it, a backup with
     * dependents is refused. A dependent that is kept stops it all the same.
     */
    withDependents?: boolean;
    /** The caller (retention) already holds the backup lock. */
    locked?: boolean;
    /** Which command deletes, for the deletion marker (default "delete"). */
    operation?: string;
    /** Why, for the deletion marker (retention's reason). */
    reason?: string;
  } = {},
): Promise<{ id: string; manifest?: BackupManifest; repository: Repository; dependents: string[] }> {
  const repository = await server.repository(options.repo);
  let manifest: BackupManifest;
  try {
    manifest = await resolveBackup(repository, backupId);
  } catch (error) {
    if (error instanceof InvalidManifestError) return deleteInvalidBackup(harbor, server, repository, backupId, error, options);
    if (!isBackupId(backupId) || !(await repository.readDeletionMarker(backupId))) throw error;
    // Killed after its manifest went: only the marker (and what no listing shows) is left to remove.
    const lock = options.locked ? undefined : await acquireLock(repository, 'backup', 'delete');
    try {
      await finishPendingDeletions(harbor, repository);
    } finally {
      await lock?.release();
    }
    return { id: backupId, repository, dependents: [] };
  }
  if (displayStatus(manifest) === 'STARTED') {
    throw new HarborError(`backup ${manifest.id} of ${server.name} is still running (pid ${manifest.process?.pid} on ${manifest.process?.hostname})`, {
      hint: 'wait for it to end, or stop that process first',
    });
  }
  // DELETING: the decision was taken (and checked) when its deletion began; only finishing remains.
  const dependents = displayStatus(manifest) === 'DELETING' ? [] : dependentsOf(await repository.listManifests(), manifest.id);
  if (displayStatus(manifest) === 'DONE') await assertSafeToDelete(server, repository, manifest, dependents, options);
  const event: BackupEvent = { server: server.name, backupId: manifest.id, method: manifest.method, repository: repository.location };
  const veto = await harbor.hooks.backup.beforeDelete.promise(event);
  if (typeof veto === 'string') throw new HarborError(`deletion of backup ${manifest.id} of ${server.name} vetoed by a plugin: ${veto}`, { hint: 'see the plugin that refused it' });
  // The backup lock keeps delete from racing a backup that reuses files, or takes this one as its parent.
  const lock = options.locked ? undefined : await acquireLock(repository, 'backup', 'delete');
  try {
    // Newest first, each through this same path (hooks, marker): at no moment is a backup left whose parent is gone.
    for (const dependent of dependents) {
      await deleteBackup(harbor, server, dependent.id, { ...options, locked: true, withDependents: false, force: true, reason: `depends on ${manifest.id}, which is being deleted` });
    }
    try {
      await repository.deleteBackup(manifest.id, manifest.deleting ?? newDeletionMarker(options.operation ?? 'delete', options.reason));
      // Under the same lock: deletions that an earlier command began and did not finish.
      if (!options.locked) await finishPendingDeletions(harbor, repository);
    } catch (error) {
      const failure = error instanceof HarborError ? error : new HarborError(`deleting backup ${manifest.id} of ${server.name} failed: ${errorMessage(error)}`, { cause: error });
      await harbor.hooks.backup.deleteFailed.promise(event, failure).catch(() => {});
      throw failure;
    }
  } finally {
    await lock?.release();
  }
  await harbor.hooks.backup.deleted.promise(event);
  return { id: manifest.id, manifest, repository, dependents: dependents.map((d) => d.id) };
}

/**
 * Finish every deletion that began and was interrupted (a deletion marker
 * is there). The caller holds the repository's backup lock. Returns the ids.
 */
export async function finishPendingDeletions(harbor: Harbor, repository: Repository): Promise<string[]> {
  const finished: string[] = [];
  for (const id of await repository.pendingDeletions()) {
    const marker = (await repository.readDeletionMarker(id)) ?? newDeletionMarker('delete');
    await repository.deleteBackup(id, marker);
    harbor.logger.info(`finished the interrupted deletion of backup ${id} of ${repository.server} in ${repository.name} (begun ${marker.since ?? 'earlier'} by ${marker.operation ?? 'a deletion'})`);
    finished.push(id);
  }
  return finished;
}

/**
 * A backup whose manifest fails validation (planted, damaged, or written
 * by something that is not pgharbor) is never restored; `delete` is how an
 * operator removes it. Nothing in it can be trusted, so the check is made
 * from the valid manifests: none may reuse its files.
 */
async function deleteInvalidBackup(
  harbor: Harbor,
  server: ServerHandle,
  repository: Repository,
  backupId: string,
  invalid: InvalidManifestError,
  options: { locked?: boolean; force?: boolean },
): Promise<{ id: string; repository: Repository; dependents: string[] }> {
  const dependents = dependentsOf(await repository.listManifests(), backupId);
  if (dependents.length > 0 && !options.force) {
    throw new HarborError(`backup ${backupId} of ${server.name} has an invalid manifest, and ${dependents.map((m) => m.id).join(', ')} depend on it`, {
      hint: 'they cannot be restored without it: delete them first, or pass --force to delete it all the same',
    });
  }
  const lock = options.locked ? undefined : await acquireLock(repository, 'backup', 'delete');
  try {
    await repository.deleteBackup(backupId, newDeletionMarker('delete', `invalid manifest: ${invalid.message}`));
  } finally {
    await lock?.release();
  }
  harbor.logger.warn(`removed backup ${backupId} of ${server.name} from ${repository.name}, whose manifest is invalid (${invalid.message})`);
  return { id: backupId, repository, dependents: [] };
}

/**
 * Refuse a delete that would leave fewer DONE backups than
 * minimum_redundancy (unless forced), break a backup that depends on this
 * one (unless its dependents go too), or remove a kept backup.
 */
async function assertSafeToDelete(
  server: ServerHandle,
  repository: Repository,
  manifest: BackupManifest,
  dependents: BackupManifest[],
  options: { force?: boolean; withDependents?: boolean },
): Promise<void> {
  for (const m of [manifest, ...dependents]) {
    if (!m.keep) continue;
    throw new HarborError(`backup ${m.id} of ${server.name} is kept (KEEP:${m.keep.toUpperCase()})${m === manifest ? '' : ` and depends on ${manifest.id}`}`, {
      hint: `release it first: pgharbor keep ${server.name} ${m.id} --release`,
    });
  }
  if (dependents.length > 0 && !options.withDependents) {
    throw new HarborError(`backup ${manifest.id} of ${server.name} is needed by ${dependents.map((m) => `${m.id} (${m.type})`).join(', ')}: they cannot be restored without it`, {
      hint: `delete them with it: pgharbor delete ${server.name} ${manifest.id} --with-dependents`,
    });
  }
  if (options.force) return;
  const done = (await repository.listManifests()).filter((m) => displayStatus(m) === 'DONE');
  const left = done.length - 1 - dependents.filter((m) => displayStatus(m) === 'DONE').length;
  const minimum = (server.config.minimum_redundancy as number | undefined) ?? 0;
  if (left < minimum) {
    throw new HarborError(`deleting backup ${manifest.id}${dependents.length ? ` and its ${dependents.length} dependents` : ''} would leave ${left} backups of ${server.name}, below minimum_redundancy ${minimum}`, {
      hint: 'take a new backup first, or pass --force if you really mean it',
    });
  }
}
