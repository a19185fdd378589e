import { displayStatus } from '../repository/backup-status.js';
import { closeSync, futimesSync, openSync, writeSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { RecoveryEvent, RestoreResult } from '../hooks.js';
import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest, ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { resolveRestorableBackup } from './resolve-backup.js';
import { ChunkReader } from './chunk-reader.js';
import { OverlappedWrites } from './overlapped-writes.js';
import { copyStoredFile } from './kernel-copy.js';
import { checkDigest, digestAlgorithmOf, fileHasher } from '../codec/file-digest.js';
import { prepareDestination, handOverOwnership, syncFilesystems } from './restore-destination.js';
import { assertTargetReachable, hasTarget, pickBackupForTarget, validateRecoveryTarget, type RecoveryTarget } from './recovery-target.js';
import { writeRecoveryConfig, type RecoveryConfigResult } from './recovery-config.js';
import { hasArchivedWal } from '../archive/wal-archive.js';
import { checkBackupReadable, decodeFile, isEncoded } from '../codec/backup-codec.js';
import { givePooledBuffer } from '../codec/buffer-pool.js';
import { storedObjectKey } from '../repository/stored-object.js';
import { checkDeltaTarget, finishDelta, planDelta, type DeltaSummary } from './delta-restore.js';
import { ContainedTree, FILE_CREATE_FLAGS, checkSeparateRoots } from './contained-tree.js';
import { isTablespaceLinkPath } from '../repository/stored-path.js';
import { checkChain } from '../repository/chain-check.js';
import { readBlockMap } from '../blocks/read-block-map.js';
import { restoreRelationFile } from '../blocks/restore-relation-file.js';

export interface RestoreOptions {
  backupId: string;
  destination: string;
  repo?: number;
  /** Tablespace name or oid → directory to restore it into (default: its original location). */
  tablespaceMap?: Record<string, string>;
  /** Bundles restored in parallel. */
  jobs?: number;
  onProgress?: (bytes: number, total: number) => void;
  /** Point-in-time recovery target; none means: replay all archived WAL (or, without an archive, the WAL in the backup). */
  target?: RecoveryTarget;
  /**
   * restore_command to write (e.g. `pgharbor --config … archive-get SERVER %f %p`).
   * Used when recovery needs the archive.
   */
  restoreCommand?: string;
  /** recovery_end_command to write with the restore_command (e.g. removing WAL copied next to the data directory). */
  recoveryEndCommand?: string;
  /** Make the restored cluster a streaming standby of the server. */
  standby?: { primaryConninfo?: string; slot?: string };
  /**
   * preserve: keep archive_mode/archive_command as backed up; off: switch
   * archiving off. Default: preserve when restoring into the server's own
   * data directory path (recovering the server itself), off for a copy.
   */
  archiveMode?: 'preserve' | 'off';
  /** On a copy: keep synchronous_standby_names (default: cleared, see recovery-config.ts). */
  keepSync?: boolean;
  /** On a copy: keep logical replication subscriptions running (default: max_logical_replication_workers = 0). */
  keepSubscriptions?: boolean;
  /**
   * Delta restore into an existing data directory of the same cluster
   * (stopped): keep files whose size and checksum match, rewrite the rest,
   * remove what the backup does not have (see delta-restore.ts).
   */
  delta?: boolean;
  /**
   * When run as root, give the restored tree to the owner of its directory
   * (default true). False when the tree is only staged, to be shipped to
   * another host whose user will own it.
   */
  handOverOwnership?: boolean;
  /**
   * When this restore is one step of a larger one (a remote restore stages
   * here, then ships): the destination the recovery hooks and notifications
   * name, and the caller fires `recovery.after` itself once really done.
   */
  staged?: { eventDestination: string };
}

export interface RestoreSummary extends RestoreResult {
  backup: BackupManifest;
  destination: string;
  repository: Repository;
  recovery: RecoveryConfigResult & { archiveRecovery: boolean };
  /** For a delta restore: bytes kept in place vs. copied from the repository. */
  delta?: DeltaSummary;
}

/** Restored last, so that a restore that stops half-way leaves a directory PostgreSQL refuses to start. */
const CONTROL_FILE = 'global/pg_control';

/**
 * Restore a DONE backup into an empty directory. Every file is checked
 * against its digest as it is written and fsynced; pg_control comes last.
 */
export async function runRestore(harbor: Harbor, server: ServerHandle, options: RestoreOptions): Promise<RestoreSummary> {
  const started = Date.now();
  const repository = await server.repository(options.repo);
  const target = options.target ?? {};
  validateRecoveryTarget(target);
  const backup = await chooseBackup(repository, options.backupId, target);
  assertTargetReachable(backup, target);
  const destination = path.resolve(options.destination);
  const archiveRecovery = hasTarget(target) || Boolean(options.standby) || (await hasArchivedWal(repository.storage, server.name));
  const event: RecoveryEvent = { server: server.name, backupId: backup.id, destination: options.staged?.eventDestination ?? destination, repository: repository.location };

  const tablespaceDirs = mapTablespaces(backup, options.tablespaceMap ?? {});
  checkSeparateRoots(destination, tablespaceDirs);
  await checkBackupReadable(repository, backup); // a wrong encryption key fails before anything is written
  // Every link of the chain present and DONE, every block map sound: refused before anything is written.
  const chainIds = new Set((await checkChain(repository, backup)).map((m) => m.id));
  await checkBlockMaps(repository, backup, chainIds);
  const deltaTarget = options.delta ? await checkDeltaTarget(destination, backup) : undefined; // refusals change nothing
  const veto = await harbor.hooks.recovery.before.promise(event);
  if (typeof veto === 'string') throw new HarborError(`restore of ${backup.id} vetoed by a plugin: ${veto}`);
  if (deltaTarget !== 'populated') await prepareDestination(destination, [...tablespaceDirs.values()]);
  harbor.logger.info(`restoring backup ${backup.id} of ${server.name} from ${repository.name} (${repository.location}) into ${destination}`);

  try {
    const plan = deltaTarget === 'populated' ? await planDelta(destination, backup, tablespaceDirs, options.jobs ?? 2) : undefined;
    const total = backup.size - (plan?.summary.keptBytes ?? 0);
    let done = 0;
    const progress = (bytes: number) => {
      done += bytes;
      options.onProgress?.(done, total);
    };
    // Directories first, then files, each straight into its root (tablespace contents into their
    // directories, not through a link); the only links, those of the tablespaces, restore makes last.
    // pg_wal is a plain directory even when it was a link on the source (pgBackRest's default):
    // a restored copy never writes into the source's WAL directory. A manifest link's target is never used.
    const tree = new ContainedTree(destination, tablespaceDirs);
    await tree.makeDirectory('pg_tblspc');
    for (const entry of backup.files) {
      if (isTablespaceLinkPath(entry.path)) continue;
      if (entry.type === 'file') await tree.makeParentOf(entry.path);
      else await tree.makeDirectory(entry.path, entry.type === 'directory' ? entry.mode & 0o777 || 0o700 : 0o700); // a link's mode says nothing
    }
    const writeTarget = (file: ManifestFile) => tree.location(file.path);

    const files = backup.files.filter((f) => f.type === 'file');
    const controlFile = files.find((f) => f.path === CONTROL_FILE);
    const toWrite = files.filter((f) => f !== controlFile && !plan?.kept.has(f.path));
    const bundles = groupByBundle(repository, toWrite.filter((f) => !f.blockMap), backup.id);
    const jobs = Math.max(1, options.jobs ?? defaultRestoreJobs(files));
    // Largest first: a big table's bundle started last would run alone at the end, on one CPU.
    const queue: (BundleGroup | ManifestFile)[] = [...bundles.values(), ...toWrite.filter((f) => f.blockMap)].sort((a, b) => workBytes(b) - workBytes(a));
    const workers = Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        if ('path' in item) {
          // A block-mapped file: its super blocks, in this backup and earlier ones of its chain.
          const map = await readBlockMap(repository, backup.id, item, chainIds);
          const { writtenBytes } = await restoreRelationFile(repository, item, map, writeTarget(item), plan?.patch.has(item.path) ?? false);
          if (plan) plan.summary.keptBytes += item.size - writtenBytes;
          if (plan && writtenBytes === 0) plan.summary.keptFiles++;
          progress(plan ? writtenBytes : item.size);
          harbor.hooks.recovery.fileRestored.call(event, item);
          continue;
        }
        await restoreBundle(repository, backup.id, item, writeTarget, (file) => {
          progress(file.size);
          harbor.hooks.recovery.fileRestored.call(event, file);
        });
      }
    });
    await Promise.all(workers);
    for (const [oid, dir] of tablespaceDirs) await makeTablespaceLink(destination, oid, dir);
    // Files are not fsynced one by one (a journal commit each): one syncfs
    // per filesystem makes them all durable before pg_control, which comes last.
    await syncFilesystems(destination, [...tablespaceDirs.values()]);
    await rewriteTablespaceMap(destination, tablespaceDirs);
    // The server's own data directory path, here: the server recovering itself, not a copy (a remote restore stages elsewhere).
    const recoveringInPlace = destination === backup.dataDirectory;
    const recovery = await writeRecoveryConfig({
      destination,
      pgVersion: backup.pgVersion,
      backupId: backup.id,
      target,
      restoreCommand: archiveRecovery ? options.restoreCommand : undefined,
      recoveryEndCommand: archiveRecovery && options.restoreCommand ? options.recoveryEndCommand : undefined,
      standby: options.standby,
      disableArchiving: (options.archiveMode ?? (recoveringInPlace ? 'preserve' : 'off')) === 'off',
      detach: recoveringInPlace ? undefined : { keepSync: options.keepSync, keepSubscriptions: options.keepSubscriptions },
      archiveRecovery,
    });
    await harbor.hooks.recovery.configWritten.promise(event, recovery.settings);
    if (controlFile) {
      await restoreBundle(repository, backup.id, { key: storedObjectKey(repository, backup.id, controlFile), files: [controlFile] }, writeTarget, (file) => progress(file.size));
    }
    if (plan) await finishDelta(destination);
    await syncFilesystems(destination, [...tablespaceDirs.values()]);
    if (options.handOverOwnership !== false) await handOverOwnership(destination, [...tablespaceDirs.values()], harbor.logger);

    const result: RestoreResult = { files: files.length, bytes: done, seconds: (Date.now() - started) / 1000 };
    if (!options.staged) await harbor.hooks.recovery.after.promise(event, result);
    const delta = plan && { ...plan.summary, copiedFiles: files.length - plan.summary.keptFiles, copiedBytes: done };
    return { ...result, backup, destination, repository, recovery: { ...recovery, archiveRecovery }, ...(delta ? { delta } : {}) };
  } catch (error) {
    const failure =
      error instanceof HarborError
        ? error
        : new HarborError(`restore of backup ${backup.id} into ${destination} failed: ${errorMessage(error)}`, { cause: error });
    const incomplete = new HarborError(failure.message, {
      hint: `${destination} is incomplete (no ${CONTROL_FILE}, PostgreSQL will refuse to start it); remove it and restore again${failure.hint ? `. ${failure.hint}` : ''}`,
      cause: error,
    });
    await harbor.hooks.recovery.failed.promise(event, incomplete).catch(() => {});
    throw incomplete;
  }
}

/** "latest" with a time or LSN target means: the newest backup that reaches it. */
export async function chooseBackup(repository: Repository, backupId: string, target: RecoveryTarget): Promise<BackupManifest> {
  if ((backupId === 'latest' || backupId === 'last') && (target.time !== undefined || target.lsn !== undefined)) {
    const picked = pickBackupForTarget(await repository.listManifests(), target);
    if (!picked) {
      const oldest = (await repository.listManifests()).find((m) => displayStatus(m) === 'DONE');
      throw new HarborError(`no backup of ${repository.server} in ${repository.name} reaches the target ${target.time ?? target.lsn}`, {
        hint: oldest ? `the earliest reachable target is the end of backup ${oldest.id}: ${oldest.stopTime} (LSN ${oldest.stopLsn})` : `take a backup first: pgharbor backup ${repository.server}`,
        exitCode: oldest ? 2 : 1,
      });
    }
    return picked;
  }
  return resolveRestorableBackup(repository, backupId);
}

/** Files stored in one object (a bundle, or a file stored alone); no key: empty files, nothing to read. */
interface BundleGroup {
  key: string | undefined;
  files: ManifestFile[];
}

/**
 * PostgreSQL recreates pg_tblspc links from tablespace_map when recovery
 * starts, so the map must name the restore locations: left as backed up,
 * a restored cluster would write into the source's tablespace directories.
 */
export async function rewriteTablespaceMap(destination: string, tablespaceDirs: Map<number, string>): Promise<void> {
  const file = path.join(destination, 'tablespace_map');
  let exists = true;
  await fs.access(file).catch(() => (exists = false));
  if (!exists) return;
  const lines = [...tablespaceDirs].map(([oid, dir]) => `${oid} ${dir.replace(/\\/g, '\\\\').replace(/\n/g, '\\\n')}\n`);
  const temporary = `${file}.pgharbor-tmp`;
  const handle = await fs.open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(lines.join(''));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporary, file);
}

/** pg_tblspc/<oid> → the tablespace's directory; a delta restore replaces the link it finds there (never follows it). */
async function makeTablespaceLink(destination: string, oid: number, dir: string): Promise<void> {
  const link = path.join(destination, 'pg_tblspc', String(oid));
  const found = await fs.lstat(link).catch(() => undefined);
  if (found?.isSymbolicLink()) await fs.unlink(link);
  await fs.symlink(dir, link);
}

function groupByBundle(repository: Repository, files: ManifestFile[], backupId: string): Map<string, BundleGroup> {
  const groups = new Map<string, BundleGroup>();
  const empty: BundleGroup = { key: undefined, files: [] };
  for (const file of files) {
    const key = storedObjectKey(repository, backupId, file);
    if (key === undefined) {
      empty.files.push(file); // zero-length files have no stored bytes
      continue;
    }
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { key, files: [] }));
    group.files.push(file);
  }
  if (empty.files.length) groups.set('', empty);
  for (const group of groups.values()) group.files.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
  return groups;
}

/**
 * Bundles restored at once when `--jobs` is not given. Stored as they are,
 * the bytes only need hashing and writing: the disk is the limit, and more
 * writes in flight can help. In three side-by-side runs at scale 100, 4 jobs
 * ran 1.30x, 1.24x and 1.60x of the tar floor against 1.47x, 1.63x and 1.50x
 * with 2 (this disk is that noisy), at the same RSS. Compressed or
 * encrypted, decoding keeps both cores busy with 2 jobs already: 4 gained
 * nothing with zstd and held frames for 35 MB more RSS.
 */
export function defaultRestoreJobs(files: ManifestFile[]): number {
  return files.every((file) => file.compression === 'none' && file.encryption === 'none') ? 4 : 2;
}

function workBytes(item: BundleGroup | ManifestFile): number {
  if ('path' in item) return item.size;
  return item.files.reduce((sum, file) => sum + (file.storedSize ?? file.size), 0);
}

/** Every block map the restore will follow, read and checked before anything is written (then dropped: read again when used). */
async function checkBlockMaps(repository: Repository, backup: BackupManifest, chainIds: ReadonlySet<string>): Promise<void> {
  const mapped = backup.files.filter((f) => f.type === 'file' && f.blockMap);
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let file = mapped.shift(); file; file = mapped.shift()) await readBlockMap(repository, backup.id, file, chainIds);
    }),
  );
}

/** Read one bundle front to back and write each of its files, verifying checksums. */
async function restoreBundle(
  repository: Repository,
  backupId: string,
  group: BundleGroup,
  targetOf: (file: ManifestFile) => string,
  onFile: (file: ManifestFile) => void,
): Promise<void> {
  if (group.key === undefined) {
    for (const file of group.files) {
      await writeFile(targetOf(file), file, (async function* () {})());
      onFile(file);
    }
    return;
  }
  const only = group.files.length === 1 ? group.files[0] : undefined;
  const local = repository.storage.localPath?.(group.key);
  if (only && local && !isEncoded(only) && (only.offset ?? 0) === 0 && (await copyStoredFile(local, targetOf(only), only))) {
    onFile(only);
    return;
  }
  const first = group.files[0].offset ?? 0;
  const last = group.files.at(-1)!;
  const length = (last.offset ?? 0) + (last.storedSize ?? last.size) - first;
  const reader = new ChunkReader(await repository.storage.get(group.key, { offset: first, length }));
  try {
    let position = first;
    for (const file of group.files) {
      if (file.offset! > position) await reader.skip(file.offset! - position);
      await writeFile(targetOf(file), file, decodeFile(repository, backupId, file, reader.take(file.storedSize ?? file.size)));
      position = file.offset! + (file.storedSize ?? file.size);
      onFile(file);
    }
  } finally {
    await reader.close();
  }
}

/**
 * Files up to this size are written with synchronous calls, tar's way: a
 * backup holds about a thousand small files, and four awaited thread-pool
 * round trips each (open, write, utimes, close) made them take 2 s of a
 * 3 s restore while the main thread hashed the big files; written from
 * the page cache, they cost ~0.1 ms each.
 */
const SMALL_FILE = 256 * 1024;
/** Files from this size on are flushed as soon as written (see kernel-copy.ts). */
const FLUSH_AT_ONCE = 64 * 1024 * 1024;

async function writeFile(target: string, file: ManifestFile, chunks: AsyncIterable<Buffer>): Promise<void> {
  if (file.size <= SMALL_FILE) return writeSmallFile(target, file, chunks);
  const hash = fileHasher(digestAlgorithmOf(file));
  // O_EXCL | O_NOFOLLOW: never write over something that was already there, never through a link.
  const handle = await fs.open(target, FILE_CREATE_FLAGS, file.mode & 0o777 || 0o600);
  const writes = new OverlappedWrites(handle, givePooledBuffer); // decoded frames go back to the decoder's pool once written
  try {
    for await (const chunk of chunks) {
      hash.update(chunk);
      await writes.write(chunk);
    }
    await writes.drain();
    checkDigest(file, hash.digest());
    if (file.mtime) await handle.utimes(file.mtime, file.mtime);
    // A big file is flushed now, while the other jobs go on: the closing syncfs then finds it clean.
    if (file.size >= FLUSH_AT_ONCE) await handle.datasync();
  } finally {
    await writes.settle(); // never close the handle under a write still running
    await handle.close();
  }
}

/** A small file: read and checked whole, then written at once (nothing is written when it does not match). */
async function writeSmallFile(target: string, file: ManifestFile, chunks: AsyncIterable<Buffer>): Promise<void> {
  const hash = fileHasher(digestAlgorithmOf(file));
  const parts: Buffer[] = [];
  for await (const chunk of chunks) {
    hash.update(chunk);
    parts.push(chunk);
  }
  checkDigest(file, hash.digest());
  // O_EXCL | O_NOFOLLOW: never write over something that was already there, never through a link.
  const fd = openSync(target, FILE_CREATE_FLAGS, file.mode & 0o777 || 0o600);
  try {
    for (const part of parts) {
      for (let at = 0; at < part.length; ) at += writeSync(fd, part, at, part.length - at);
    }
    if (file.mtime) futimesSync(fd, file.mtime, file.mtime);
  } finally {
    closeSync(fd);
    for (const part of parts) givePooledBuffer(part); // decoded frames go back to the decoder's pool
  }
}


/** Tablespace oid → where to restore it: the mapping given by name or oid, else its original location. */
export function mapTablespaces(backup: BackupManifest, map: Record<string, string>): Map<number, string> {
  const dirs = new Map<number, string>();
  const known = new Set<string>();
  for (const space of backup.tablespaces) {
    known.add(space.name).add(String(space.oid));
    dirs.set(space.oid, path.resolve(map[space.name] ?? map[String(space.oid)] ?? space.location));
  }
  for (const name of Object.keys(map)) {
    if (!known.has(name)) {
      throw new HarborError(`backup ${backup.id} has no tablespace "${name}"`, {
        hint: `its tablespaces: ${backup.tablespaces.map((s) => `${s.name} (oid ${s.oid})`).join(', ') || 'none'}`,
        exitCode: 2,
      });
    }
  }
  return dirs;
}
