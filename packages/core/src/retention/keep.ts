import type { ServerHandle } from '../server-handle.js';
import { HarborError } from '../errors.js';
import { acquireLock } from '../repository/repository-lock.js';
import { resolveBackup } from '../restore/resolve-backup.js';
import { displayStatus } from '../repository/backup-status.js';
import type { BackupManifest } from '../repository/manifest.js';

/**
 * `pgharbor keep`: a kept backup is never expired. "full" keeps it with the
 * WAL after it (like any retained backup); "standalone" keeps only the WAL
 * that makes it consistent, so it restores to its own end and no further.
 */
export async function keepBackup(server: ServerHandle, backupId: string, options: { target?: 'full' | 'standalone'; release?: boolean; repo?: number }): Promise<BackupManifest> {
  const repository = await server.repository(options.repo);
  const lock = await acquireLock(repository, 'backup', 'keep');
  try {
    const manifest = await resolveBackup(repository, backupId);
    if (displayStatus(manifest) !== 'DONE') {
      throw new HarborError(`backup ${manifest.id} of ${server.name} is ${displayStatus(manifest)}: only DONE backups can be kept`, { hint: `pgharbor list-backups ${server.name}` });
    }
    if (options.release) delete manifest.keep;
    else manifest.keep = options.target ?? 'full';
    await repository.writeManifest(manifest);
    return manifest;
  } finally {
    await lock.release();
  }
}
