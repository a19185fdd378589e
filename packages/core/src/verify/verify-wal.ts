import { createHash } from 'node:crypto';
import { errorMessage } from '../errors.js';
import type { BackupManifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { listArchivedWal, openArchivedWal } from '../archive/wal-archive.js';
import { walFileKind, walFileTimeline } from '../archive/wal-file-name.js';
import { nextSegment } from '../postgres/wal.js';
import type { VerifyProblem } from './verify-backup.js';

export interface WalVerification {
  /** First and last segment checked. */
  from?: string;
  to?: string;
  /** Segments found and read back (checksum verified). */
  checked: number;
  /** Segments inside the backup (pg_wal) that cover its range. */
  inBackup: number;
  missing: string[];
  problems: VerifyProblem[];
  note?: string;
}


/** Segment position without the timeline, for comparisons across timelines. */
function position(name: string): string {
  return name.slice(8);
}

/**
 * The WAL a backup needs and what follows it in the archive:
 * - from its start to its end segment, each segment is in the backup
 *   (pg_wal, when the WAL was included) or in the archive;
 * - after the end, on the backup's timeline and on every later timeline
 *   in the archive, no segment is missing between the first and the last
 *   archived one (a gap ends any recovery there);
 * - every archived segment in those ranges is read back, decrypted,
 *   decompressed and checked against the checksum in its name.
 */
export async function verifyWal(
  repository: Repository,
  backup: BackupManifest,
  server: string,
  /** Segments already read back in this run (several backups share the archive): name → its problem, or null. */
  checked: Map<string, VerifyProblem | null> = new Map(),
): Promise<WalVerification> {
  const result: WalVerification = { checked: 0, inBackup: 0, missing: [], problems: [] };
  if (!backup.startWal || !backup.stopWal || backup.timeline === undefined) {
    result.note = `backup ${backup.id} records no WAL range`;
    return result;
  }
  const archived = new Map<string, { sha256: string }>();
  for await (const wal of listArchivedWal(repository.storage, server)) {
    if (walFileKind(wal.name) === 'segment' && wal.sha256) archived.set(wal.name, { sha256: wal.sha256 });
  }
  const inBackup = new Set(backup.files.filter((f) => f.type === 'file' && /^pg_wal\/[0-9A-F]{24}$/.test(f.path)).map((f) => f.path.slice(7)));

  const toRead: string[] = [];
  const missing = (name: string, why: string) => {
    result.missing.push(name);
    result.problems.push({ kind: 'wal', file: name, message: `WAL segment ${name} is missing: ${why}` });
  };

  // The range the backup needs to be consistent.
  result.from = backup.startWal;
  for (let name = backup.startWal; ; name = nextSegment(name)) {
    if (inBackup.has(name)) result.inBackup++;
    else if (archived.has(name)) toRead.push(name);
    else missing(name, `backup ${backup.id} needs it to become consistent (its WAL runs from ${backup.startWal} to ${backup.stopWal})`);
    result.to = name;
    if (name >= backup.stopWal || toRead.length + result.inBackup + result.missing.length > 1_000_000) break;
  }

  // Onward: the archive after the backup, timeline by timeline.
  const timelines = new Map<number, string[]>();
  for (const name of archived.keys()) {
    const tli = walFileTimeline(name);
    if (tli < backup.timeline) continue;
    if (tli === backup.timeline && position(name) <= position(backup.stopWal)) continue;
    let list = timelines.get(tli);
    if (!list) timelines.set(tli, (list = []));
    list.push(name);
  }
  for (const [tli, names] of [...timelines].sort((a, b) => a[0] - b[0])) {
    names.sort();
    const last = names.at(-1)!;
    let name = tli === backup.timeline ? nextSegment(backup.stopWal) : names[0];
    for (; name <= last; name = nextSegment(name)) {
      if (archived.has(name)) toRead.push(name);
      else missing(name, `recovery from backup ${backup.id} cannot go past it (the archive goes on to ${last})`);
    }
    if (last > (result.to ?? '')) result.to = last;
  }

  for (const name of toRead) {
    if (checked.has(name)) {
      const known = checked.get(name);
      if (known) result.problems.push(known);
      else result.checked++;
      continue;
    }
    const problemsBefore = result.problems.length;
    try {
      const opened = await openArchivedWal(repository.storage, server, name, repository.codec);
      if (!opened) {
        missing(name, 'it disappeared while verify ran');
        continue;
      }
      const hash = createHash('sha256');
      for await (const chunk of opened.stream) hash.update(chunk);
      const actual = hash.digest('hex');
      if (actual !== opened.wal.sha256) result.problems.push({ kind: 'wal', file: name, message: `WAL segment ${name} does not match its checksum (expected sha256 ${opened.wal.sha256}, got ${actual})` });
      result.checked++;
    } catch (error) {
      result.problems.push({ kind: 'wal', file: name, message: `WAL segment ${name} cannot be read: ${errorMessage(error)}` });
    }
    checked.set(name, result.problems.length > problemsBefore ? result.problems.at(-1)! : null);
  }
  return result;
}
