import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { displayStatus } from '../repository/backup-status.js';
import { MAX_CHAIN_LENGTH, checkChain, majorVersion } from '../repository/chain-check.js';
import type { BackupManifest, BackupType } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';

export interface ChosenParent {
  /** What the backup will be: the type asked for, or full when no parent fits. */
  type: BackupType;
  parent?: BackupManifest;
  /** The parent's chain, oldest first (the parent last). */
  chain?: BackupManifest[];
}

/**
 * The parent of a new backup: for diff, the newest DONE full of this
 * server in this repository; for incr, the newest DONE backup of any type.
 * Only backups of the same method, cluster and PostgreSQL major version
 * count, and the parent's own chain must be whole. When none fits, the
 * backup is a full, and an INFO line says why.
 */
export async function chooseParent(
  repository: Repository,
  type: BackupType,
  current: { systemIdentifier: string; pgVersion: number; method: string },
  logger: Logger,
): Promise<ChosenParent> {
  if (type === 'full') return { type };
  const fits = (await repository.listManifests()).filter(
    (m) => displayStatus(m) === 'DONE' && m.method === current.method && m.systemIdentifier === current.systemIdentifier && majorVersion(m.pgVersion) === majorVersion(current.pgVersion) && (type === 'incr' || m.type === 'full'),
  );
  const parent = fits.at(-1);
  const asFull = (why: string): ChosenParent => {
    logger.info(`taking a full backup instead of ${type === 'diff' ? 'a differential' : 'an incremental'} one: ${why}`);
    return { type: 'full' };
  };
  if (!parent) return asFull(`${repository.name} holds no DONE ${type === 'diff' ? 'full ' : ''}backup of ${repository.server} by method ${current.method} of this cluster and PostgreSQL major version`);
  let chain: BackupManifest[];
  try {
    chain = await checkChain(repository, parent);
  } catch (error) {
    return asFull(`the newest possible parent ${parent.id} cannot be used: ${errorMessage(error)}`);
  }
  if (chain.length >= MAX_CHAIN_LENGTH) return asFull(`the chain of ${parent.id} already has ${chain.length} backups`);
  return { type, parent, chain };
}
