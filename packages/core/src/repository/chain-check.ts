import { HarborError } from '../errors.js';
import { resolveChain } from './backup-chain.js';
import type { BackupManifest } from './manifest.js';
import type { Repository } from './repository.js';

/** A chain longer than this is refused (each link is read at every restore); a full every few hundred backups keeps below it. */
export const MAX_CHAIN_LENGTH = 1000;

/** PostgreSQL's major version from server_version_num (150018 → 15). */
export function majorVersion(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

/**
 * The backups `backup` needs, oldest first and `backup` last, checked before
 * a restore (or verify, or an incremental backup on top of it) reads a
 * byte: every dependency present and DONE, older than what needs it, of
 * the same cluster (backup-chain.ts); and along the parent line, the same
 * PostgreSQL major version, a diff's parent a full, a full without parent,
 * and every file reference of a diff or incr on that line (a reference
 * elsewhere means a parent that is not its real ancestor). A broken chain
 * is refused naming the link.
 */
export async function checkChain(repository: Repository, backup: BackupManifest): Promise<BackupManifest[]> {
  const refuse = (reason: string, hint = 'pgharbor did not write this manifest: check who can write the repository; nothing was written') =>
    new HarborError(`backup ${backup.id} of ${repository.server}: ${reason}`, { hint });
  const manifests = await repository.listManifests();
  if (!manifests.some((m) => m.id === backup.id)) manifests.push(backup);
  const { chain, problem } = resolveChain(manifests, backup.id);
  if (problem) {
    throw refuse(
      `its chain link ${problem.id} (needed by ${problem.neededBy}) cannot be used: ${problem.reason}`,
      "this backup cannot be restored without it: restore an older full backup (pgharbor list-backups shows each backup's parent), or bring the missing backup back into the repository; nothing was written",
    );
  }
  if (chain.length >= MAX_CHAIN_LENGTH) throw refuse(`its chain is longer than ${MAX_CHAIN_LENGTH} backups`, 'take a full backup');
  const byId = new Map(chain.map((m) => [m.id, m]));
  const line = new Set<string>([backup.id]);
  for (let child = backup; ; ) {
    if (child.type === 'full') {
      if (child.parent !== undefined) throw refuse(`${child.id} is a full backup but names a parent (${child.parent})`);
      break;
    }
    if (child.parent === undefined) throw refuse(`${child.id} is a ${child.type} backup without a parent`);
    const parent = byId.get(child.parent)!;
    if (majorVersion(parent.pgVersion) !== majorVersion(child.pgVersion)) throw refuse(`its chain link ${parent.id} is of another PostgreSQL major version`);
    if (child.type === 'diff' && parent.type !== 'full') throw refuse(`differential ${child.id} names ${parent.id}, a ${parent.type} backup, as parent`);
    line.add(parent.id);
    child = parent;
  }
  if (backup.parent !== undefined) {
    for (const file of backup.files) {
      if (file.reference !== undefined && !line.has(file.reference)) {
        throw refuse(`file ${file.path} points into backup ${file.reference}, which is not a link of its chain (${[...line].reverse().join(' → ')})`);
      }
    }
  }
  return [...chain, backup];
}
