import { HarborError } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import type { BackupManifest } from '../repository/manifest.js';
import { displayStatus } from '../repository/backup-status.js';
import { isBackupId } from '../repository/backup-id.js';

const ALIASES = ['latest', 'last', 'oldest', 'first'];

/**
 * A backup id from the command line is a key part in the repository: refuse
 * anything that is not one (a path, "..") before it reaches a storage
 * driver, whose own key check would only say "invalid storage key".
 */
export function assertBackupIdArgument(idOrAlias: string): void {
  if (ALIASES.includes(idOrAlias) || isBackupId(idOrAlias)) return;
  throw new HarborError(`"${idOrAlias}" is not a backup id`, {
    hint: `backup ids are UTC start times such as 20261125T142600 (see pgharbor list-backups), or one of ${ALIASES.join(', ')}`,
    exitCode: 2,
  });
}

/**
 * Find a backup by id, or "latest"/"oldest" (the newest/oldest DONE
 * backup), as Barman and pgBackRest accept.
 */
export async function resolveBackup(repository: Repository, idOrAlias: string): Promise<BackupManifest> {
  assertBackupIdArgument(idOrAlias);
  if (ALIASES.includes(idOrAlias)) {
    const done = (await repository.listManifests()).filter((m) => displayStatus(m) === 'DONE');
    const chosen = idOrAlias === 'latest' || idOrAlias === 'last' ? done.at(-1) : done[0];
    if (!chosen) {
      throw new HarborError(`server ${repository.server} has no completed backup in ${repository.name} (${repository.location})`, {
        hint: `take one with: pgharbor backup ${repository.server}`,
      });
    }
    return chosen;
  }
  const manifest = await repository.readManifest(idOrAlias);
  if (!manifest) {
    throw new HarborError(`backup ${idOrAlias} of server ${repository.server} does not exist in ${repository.name} (${repository.location})`, {
      hint: `list the backups with: pgharbor list-backups ${repository.server}`,
    });
  }
  return manifest;
}

/** Like resolveBackup, but only a DONE backup will do. */
export async function resolveRestorableBackup(repository: Repository, idOrAlias: string): Promise<BackupManifest> {
  const manifest = await resolveBackup(repository, idOrAlias);
  const status = displayStatus(manifest);
  if (status !== 'DONE') {
    throw new HarborError(`backup ${manifest.id} of server ${repository.server} is ${status}, not restorable${manifest.error ? ` (${manifest.error.message})` : ''}`, {
      hint: `choose a DONE backup from: pgharbor list-backups ${repository.server}`,
    });
  }
  return manifest;
}
