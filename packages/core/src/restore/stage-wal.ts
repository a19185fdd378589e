import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { Repository } from '../repository/repository.js';
import type { BackupManifest } from '../repository/manifest.js';
import { HarborError, errorMessage } from '../errors.js';
import { listArchivedWal, openArchivedWal } from '../archive/wal-archive.js';
import { walFileKind, walFileTimeline } from '../archive/wal-file-name.js';
import { writeWalVerified } from '../archive/archive-get.js';

/**
 * Which archived WAL a recovery from `backup` can ask for: every timeline
 * history file (small, and recovery_target_timeline = latest follows them),
 * and the segments (complete or .partial) from the backup's start segment
 * on, on its timeline or a later one. Backup history files are never asked
 * for. Without a known start segment, every segment.
 */
export function walNeededForRecovery(name: string, backup: Pick<BackupManifest, 'startWal' | 'timeline'>): boolean {
  const kind = walFileKind(name);
  if (kind === 'history') return true;
  if (kind !== 'segment' && kind !== 'partial') return false;
  if (backup.timeline !== undefined && walFileTimeline(name) < backup.timeline) return false;
  // Positions compare as the 16 hex digits after the timeline.
  return !backup.startWal || name.slice(8, 24) >= backup.startWal.slice(8, 24);
}

export interface StagedWal {
  files: number;
  bytes: number;
}

/**
 * Copy the archived WAL recovery may need into `directory`, decoded
 * (decompressed, decrypted) and checked against its sha256, so that a
 * host without pgharbor can recover with `cp`. Each file is read from the
 * first repository that has it, `preferred` first.
 */
export async function stageWalForRecovery(
  harbor: Harbor,
  server: ServerHandle,
  backup: BackupManifest,
  preferred: Repository,
  directory: string,
  jobs = 2,
): Promise<StagedWal> {
  const repositories = [preferred, ...(await server.repositories()).filter((r) => r !== preferred)];
  const source = new Map<string, Repository>();
  for (const repository of repositories) {
    for await (const wal of listArchivedWal(repository.storage, server.name)) {
      if (!source.has(wal.name) && walNeededForRecovery(wal.name, backup)) source.set(wal.name, repository);
    }
  }
  await fs.mkdir(directory, { recursive: true, mode: 0o700 });
  const queue = [...source].sort(([a], [b]) => (a < b ? -1 : 1));
  let bytes = 0;
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [name, repository] = next;
      // Listings name only WAL files (listArchivedWal); checked again where the name becomes a local path.
      if (!walFileKind(name)) throw new HarborError(`refusing to stage ${JSON.stringify(name)}: not a WAL file name`, { hint: `check the archive of ${server.name} in ${repository.location}` });
      const target = path.join(directory, name);
      try {
        const opened = await openArchivedWal(repository.storage, server.name, name, repository.codec);
        if (!opened) throw new Error('listed, but gone when read (expired meanwhile?)');
        await writeWalVerified(opened.stream, target, opened.wal.sha256, name);
      } catch (error) {
        throw new HarborError(`cannot copy archived WAL ${name} of ${server.name} from ${repository.name} (${repository.location}): ${errorMessage(error)}`, {
          hint: `check the archive with: pgharbor verify ${server.name}`,
          cause: error,
        });
      }
      bytes += (await fs.stat(target)).size;
      harbor.logger.debug(`staged ${name} from ${repository.name}`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, queue.length)) }, worker));
  return { files: source.size, bytes };
}
