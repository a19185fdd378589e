import fs from 'node:fs/promises';
import path from 'node:path';
import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest, ManifestFile } from '../repository/manifest.js';
import { digestAlgorithmOf, digestOfLocalFile, matchesRecorded, recordedDigest } from '../codec/file-digest.js';
import { ContainedTree } from './contained-tree.js';

/**
 * `restore --delta`: bring an existing data directory of the same cluster
 * back to a backup by rewriting only what differs, as pgBackRest's delta
 * restore does. Files whose size and digest match the manifest stay;
 * changed ones are replaced; what the backup does not have is removed
 * (inside tablespaces only below the cluster's own PG_<version> directory).
 *
 * Safety, checked before anything is touched: PostgreSQL must not run
 * there (postmaster.pid naming a live process), and global/pg_control must
 * name the backup's system identifier. pg_control is then moved aside to
 * global/pg_control.pgharbor-delta, so a delta restore that stops half-way
 * leaves a directory PostgreSQL refuses to start, and a second delta
 * restore still knows whose directory it is.
 */
export const CONTROL_FILE = 'global/pg_control';
export const CONTROL_ASIDE = 'global/pg_control.pgharbor-delta';

export interface DeltaSummary {
  /** Files whose size and checksum already matched: left as they were. */
  keptFiles: number;
  keptBytes: number;
  /** Files rewritten from the backup (changed, missing, and pg_control). */
  copiedFiles: number;
  copiedBytes: number;
  /** Entries the backup does not have, removed. */
  removed: number;
  /** Bytes read from the target to compare checksums. */
  checkedBytes: number;
}

export interface DeltaPlan {
  /** Manifest paths of the files kept as they are. */
  kept: Set<string>;
  /** Manifest paths of block-mapped files found in place: only their blocks that differ are rewritten (blocks/restore-relation-file.ts). */
  patch: Set<string>;
  summary: DeltaSummary;
}

/** The first 8 bytes of pg_control are the cluster's system identifier (ControlFileData.system_identifier, host byte order). */
export function systemIdentifierOf(control: Buffer): string {
  return control.readBigUInt64LE(0).toString();
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether a delta restore can go into `destination`: 'empty' (a plain
 * restore will do), 'populated' (same cluster, stopped), or a refusal.
 * Changes nothing.
 */
export async function checkDeltaTarget(destination: string, backup: BackupManifest): Promise<'empty' | 'populated'> {
  let entries: string[];
  try {
    entries = await fs.readdir(destination);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'empty';
    throw new HarborError(`cannot read restore target ${destination}: ${errorMessage(error)}`, { hint: 'check the path and its permissions' });
  }
  if (entries.length === 0) return 'empty';

  const pidFile = path.join(destination, 'postmaster.pid');
  const pidText = await fs.readFile(pidFile, 'utf8').catch(() => undefined);
  if (pidText !== undefined) {
    const pid = Number.parseInt(pidText.split('\n')[0], 10);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      throw new HarborError(`PostgreSQL is running in ${destination} (postmaster.pid names the live process ${pid}); a delta restore needs it stopped`, {
        hint: `stop it first: pg_ctl -D ${destination} stop -m fast; nothing was changed`,
      });
    }
  }

  let control: Buffer | undefined;
  for (const name of [CONTROL_FILE, CONTROL_ASIDE]) {
    control = await fs.readFile(path.join(destination, name)).catch(() => undefined);
    if (control && control.length >= 8) break;
  }
  if (!control || control.length < 8) {
    throw new HarborError(`${destination} is not empty and has no ${CONTROL_FILE}: a delta restore cannot tell which cluster it belongs to`, {
      hint: 'restore into an empty directory instead (or empty this one); nothing was changed',
    });
  }
  const found = systemIdentifierOf(control);
  if (found !== backup.systemIdentifier) {
    throw new HarborError(`${destination} belongs to another cluster (system identifier ${found}); backup ${backup.id} is of ${backup.systemIdentifier}`, {
      hint: 'a delta restore only refreshes a data directory of the same cluster; restore into an empty directory instead; nothing was changed',
    });
  }
  return 'populated';
}

/**
 * Compare the target with the manifest and clear what must be rewritten:
 * changed files and extra entries are removed, symlinks too (the restore
 * recreates those of the backup). Returns the files to keep.
 */
export async function planDelta(destination: string, backup: BackupManifest, tablespaceDirs: Map<number, string>, jobs = 2): Promise<DeltaPlan> {
  const summary: DeltaSummary = { keptFiles: 0, keptBytes: 0, copiedFiles: 0, copiedBytes: 0, removed: 0, checkedBytes: 0 };
  const kept = new Set<string>();
  const patch = new Set<string>();

  // First of all: the directory stops being startable, and keeps saying whose it is.
  const control = path.join(destination, CONTROL_FILE);
  const aside = path.join(destination, CONTROL_ASIDE);
  // Only inside a real global/: a link planted in its place is removed by the walk below, never renamed through.
  const global = await fs.lstat(path.dirname(control)).catch(() => undefined);
  if (global?.isDirectory() && (await exists(control))) {
    if (await exists(aside)) await fs.rm(control);
    else await fs.rename(control, aside);
    await syncDir(path.dirname(control));
  }

  /** Where a manifest path lives on disk: tablespace contents in their (mapped) directories. */
  const tree = new ContainedTree(destination, tablespaceDirs);
  const realPath = (p: string): string => tree.location(p);
  const files = new Map<string, ManifestFile>();
  const dirs = new Set<string>([destination]);
  for (const entry of backup.files) {
    const real = realPath(entry.path);
    if (entry.type === 'file') files.set(real, entry);
    if (entry.type === 'directory') dirs.add(real);
    for (let dir = path.dirname(real); dir.length > 1 && !dirs.has(dir); dir = path.dirname(dir)) dirs.add(dir);
  }

  const candidates: [string, ManifestFile][] = [];
  const remove = async (p: string) => {
    await fs.rm(p, { recursive: true, force: true });
    summary.removed++;
  };
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (p === aside) continue;
      if (entry.isDirectory()) {
        if (dirs.has(p)) await walk(p);
        else await remove(p);
      } else if (entry.isFile() && files.has(p)) {
        candidates.push([p, files.get(p)!]);
      } else if (entry.isSymbolicLink() && /^pg_tblspc\/\d+$/.test(path.relative(destination, p))) {
        await fs.unlink(p); // tablespace links are recreated to their (mapped) locations
      } else {
        await remove(p); // extra files, other links, sockets…
      }
    }
  };
  await walk(destination);
  // Tablespaces: only the cluster's own version directory (PG_15_<catversion>) is ours to clean.
  for (const [oid, dir] of tablespaceDirs) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const own = new Set(backup.files.map((f) => new RegExp(`^pg_tblspc/${oid}/([^/]+)`).exec(f.path)?.[1]).filter((d): d is string => Boolean(d)));
    for (const name of own) {
      const versionDir = path.join(dir, name);
      const found = await fs.lstat(versionDir).catch(() => undefined);
      if (found?.isDirectory()) await walk(versionDir);
      else if (found) await remove(versionDir); // a link (or file) planted where the version directory goes: removed, never followed
    }
  }

  // Same size and same digest (in the entry's own algorithm): keep. Read in parallel (hashing stays on this thread; reads on the pool).
  const queue = candidates.filter(([, file]) => file.path !== CONTROL_FILE);
  await Promise.all(
    Array.from({ length: Math.max(1, jobs) }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [p, file] = next;
        const stat = await fs.lstat(p);
        if (file.blockMap) {
          // Compared block by block against its map when restored: no whole-file read here.
          patch.add(file.path);
          if ((stat.mode & 0o777) !== (file.mode & 0o777) && file.mode) await fs.chmod(p, file.mode & 0o777);
          continue;
        }
        if (stat.size === file.size && recordedDigest(file) && matchesRecorded(file, await digestOfLocalFile(p, digestAlgorithmOf(file), (bytes) => (summary.checkedBytes += bytes)))) {
          kept.add(file.path);
          summary.keptFiles++;
          summary.keptBytes += file.size;
          if ((stat.mode & 0o777) !== (file.mode & 0o777) && file.mode) await fs.chmod(p, file.mode & 0o777);
          if (file.mtime && Math.floor(stat.mtimeMs / 1000) !== file.mtime) await fs.utimes(p, file.mtime, file.mtime);
        } else {
          await fs.rm(p, { force: true });
        }
      }
    }),
  );
  return { kept, patch, summary };
}

/** After a delta restore wrote pg_control: the copy set aside goes. */
export async function finishDelta(destination: string): Promise<void> {
  await fs.rm(path.join(destination, CONTROL_ASIDE), { force: true });
}


async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
