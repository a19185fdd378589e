import os from 'node:os';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { BackupEvent } from '../hooks.js';
import { HarborError, errorMessage } from '../errors.js';
import { queryServerInfo } from '../postgres/server-info.js';
import { backupIdFor } from '../repository/backup-id.js';
import { BundleWriter } from '../repository/bundle-writer.js';
import { MANIFEST_FORMAT_VERSION, type BackupManifest, type BackupType, type ManifestFile } from '../repository/manifest.js';
import { chooseBackupType } from './backup-type-choice.js';
import { acquireLock } from '../repository/repository-lock.js';
import { displayStatus, isOrphan, orphanError } from '../repository/backup-status.js';
import type { Repository } from '../repository/repository.js';
import { encodePgBackupManifest } from '../repository/manifest-codec.js';
import { ingestTar } from './tar-ingest.js';
import { IncrementalStore } from './incremental-store.js';
import { chooseParent } from './choose-parent.js';
import { InvalidManifestError, validateManifest, type ManifestPlace } from '../repository/manifest-validate.js';
import type { BackupSink } from './backup-method.js';
import { PGHARBOR_VERSION } from '../version.js';

export interface BackupOptions {
  /** 1-based repository number; default the first. */
  repo?: number;
  label?: string;
  /**
   * full (default); diff: only what changed since the newest full; incr:
   * only what changed since the newest backup. Without a parent that fits,
   * a full is taken (with an INFO line saying why).
   */
  type?: BackupType;
  /** Called as bytes are stored (for a progress display). */
  onProgress?: (storedBytes: number, expectedBytes: number | undefined) => void;
  /** Abort the backup (e.g. on SIGINT): it ends FAILED. */
  signal?: AbortSignal;
  /** Method options for this run only (e.g. `--reuse-backup` → { reuse_backup }). */
  overrides?: Record<string, unknown>;
}

/**
 * Take one backup of `server` with its configured method. The manifest
 * is written STARTED before any data, and replaced by DONE only after every
 * file is stored; any failure replaces it by FAILED with the error.
 */
export async function runBackup(harbor: Harbor, server: ServerHandle, options: BackupOptions = {}): Promise<BackupManifest> {
  const attempt: BackupEvent = { server: server.name, backupId: '', method: server.config.method, repository: '' };
  try {
    return await takeBackup(harbor, server, options, attempt);
  } catch (error) {
    // A backup that could not start (PostgreSQL down, repository unreachable, lock held, veto) failed too: observers hear of it.
    if (!announced.has(error as object)) await harbor.hooks.backup.failed.promise(attempt, error instanceof Error ? error : new Error(String(error))).catch(() => {});
    throw error;
  }
}

/** Failures already announced on hooks.backup.failed (those after the manifest exists). */
const announced = new WeakSet<object>();

async function takeBackup(harbor: Harbor, server: ServerHandle, options: BackupOptions, attempt: BackupEvent): Promise<BackupManifest> {
  const method = harbor.methods.get(server.config.method);
  const repository = await server.repository(options.repo);
  attempt.repository = repository.location;
  const client = await server.connect();
  let info;
  try {
    info = await queryServerInfo(client);
  } catch (error) {
    throw new HarborError(`server ${server.name}: cannot read the cluster's identity and settings: ${errorMessage(error)}`, {
      hint: 'the conninfo user needs to read data_directory and pg_control: a superuser, or GRANT pg_read_all_settings, pg_monitor TO <user>',
      cause: error,
    });
  } finally {
    await client.end().catch(() => {});
  }
  await repository.checkIdentity(info.systemIdentifier, info.versionNum);
  await repository.codec.prepareWrite(); // a wrong or missing encryption key fails here, before anything is stored
  // --type, else the server's backup_type (which full_backup_every may turn into a full, below).
  const askedType = options.type ?? (server.config.backup_type as BackupType | undefined) ?? 'full';
  if (askedType !== 'full' && !method.incremental) {
    throw new HarborError(`server ${server.name}: method ${server.config.method} does not take ${askedType} backups`, {
      hint: server.config.method === 'rsync' ? 'the rsync method reuses unchanged files of the previous backup by itself (reuse_backup): take --type full' : 'take --type full, or use the basebackup method',
      exitCode: 2,
    });
  }

  const lock = await acquireLock(repository, 'backup', 'backup');
  try {
    await failOrphans(repository, harbor);
    const started = new Date();
    const id = await uniqueBackupId(repository, started);
    const typeChoice = chooseBackupType(options.type, server.config, await repository.listManifests(), started);
    if (typeChoice.reason) harbor.logger.info(`backup of ${server.name} is a full backup: ${typeChoice.reason}`);
    const chosen = await chooseParent(repository, typeChoice.type, { systemIdentifier: info.systemIdentifier, pgVersion: info.versionNum, method: server.config.method }, harbor.logger);
    const event: BackupEvent = { server: server.name, backupId: id, method: server.config.method, repository: repository.location };
    attempt.backupId = id;
    const veto = await harbor.hooks.backup.before.promise(event);
    if (typeof veto === 'string') throw new HarborError(`backup of ${server.name} vetoed by a plugin: ${veto}`, { hint: 'see the plugin that refused it' });

    const manifest: BackupManifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      id,
      server: server.name,
      status: 'STARTED',
      type: chosen.type,
      ...(chosen.parent ? { parent: chosen.parent.id } : {}),
      method: server.config.method,
      // --label, else the server's label setting (a method option, e.g. basebackup's), else one naming the backup.
      label: options.label ?? (typeof server.config.label === 'string' ? server.config.label : undefined) ?? `pgharbor backup ${id}`,
      startTime: started.toISOString(),
      pgVersion: info.versionNum,
      systemIdentifier: info.systemIdentifier,
      dataDirectory: info.dataDirectory,
      tablespaces: info.tablespaces,
      walIncluded: false,
      files: [],
      bundles: [],
      size: 0,
      storedSize: 0,
      process: { pid: process.pid, hostname: os.hostname() },
      pgharborVersion: PGHARBOR_VERSION,
    };
    await repository.writeManifest(manifest);
    harbor.logger.info(`backup ${id} of ${server.name} started (${manifest.type}${manifest.parent ? ` of ${manifest.parent}` : ""}, method ${manifest.method}, repository ${repository.name}: ${repository.location})`);

    const writer = new BundleWriter(repository, id);
    const store = new IncrementalStore(repository, id, writer, chosen.parent && { manifest: chosen.parent, chain: chosen.chain! });
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason ?? new Error('backup aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let expected: number | undefined;
    const files: ManifestFile[] = [];
    const sink: BackupSink = {
      ingestTar: (tar, ingestOptions) =>
        ingestTar(
          tar,
          (source, size, path) => store.store(source, size, path),
          (source, size, path) => store.storeIncremental(source, size, path),
          (file, reusedBytes) => record(file, reusedBytes),
          ingestOptions,
        ),
      storePgBackupManifest: async (content) => {
        await repository.storage.put(repository.pgBackupManifestKey(id), await encodePgBackupManifest(repository, id, content));
        manifest.pgBackupManifest = true;
      },
      storeFile: async (entry, content) => {
        const stored = await writer.writeFile(content, entry.size ?? 0, entry.path);
        const file: ManifestFile = { path: entry.path, type: 'file', mode: entry.mode, mtime: entry.mtime, compression: 'none', encryption: 'none', ...stored };
        record(file);
        return file;
      },
      record: (file, reusedBytes = 0) => record(file, reusedBytes),
      tree: () => treeOf(repository, id),
      previousTree: (backupId) => treeOf(repository, backupId),
      previousBackup: async () => {
        const done = (await repository.listManifests()).filter((m) => displayStatus(m) === 'DONE' && m.method === manifest.method && m.id !== id);
        return done.at(-1);
      },
    };
    const record = (file: ManifestFile, reusedBytes = 0) => {
      files.push(file);
      manifest.size += file.size;
      if (reusedBytes) manifest.reusedSize = (manifest.reusedSize ?? 0) + reusedBytes;
      if (file.type === 'file') {
        harbor.hooks.backup.fileStored.call(event, file);
        options.onProgress?.(manifest.size, expected);
      }
    };

    try {
      await harbor.hooks.backup.started.promise(event, manifest);
      const result = await method.run({
        server,
        backupId: id,
        label: manifest.label,
        sink,
        logger: harbor.logger,
        signal: abort.signal,
        setExpectedBytes: (bytes) => (expected = bytes),
        repository,
        type: chosen.type,
        parent: chosen.parent,
        overrides: options.overrides ?? {},
      });
      if (abort.signal.aborted) throw abort.signal.reason;
      manifest.bundles = await writer.finish();
      Object.assign(manifest, {
        status: 'DONE',
        stopTime: new Date().toISOString(),
        startLsn: result.startLsn,
        stopLsn: result.stopLsn,
        checkpointLsn: result.checkpointLsn,
        startWal: result.startWal,
        stopWal: result.stopWal,
        timeline: result.timeline,
        walIncluded: result.walIncluded,
        tablespaces: result.tablespaces,
        ...(result.reuse ? { reuse: result.reuse } : {}),
        files: files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
        // Bytes this backup added to the repository: its bundles, and the tree files it did not hard-link.
        storedSize: manifest.bundles.reduce((sum, bundle) => sum + bundle.storedSize, 0) + treeBytes(files, manifest.reusedSize ?? 0),
      } satisfies Partial<BackupManifest>);
      if (result.startTime) manifest.startTime = result.startTime.toISOString();
      delete manifest.process;
      // Whatever the method (a plugin's too) recorded passes the rules every reader applies, or the backup fails naming the entry.
      checkRecorded(manifest, placeOf(repository, manifest));
      // The DONE manifest is the last write: only now does the backup count as restorable.
      await repository.writeManifest(manifest);
      harbor.logger.info(`backup ${id} of ${server.name} DONE: ${files.filter((f) => f.type === 'file').length} files, ${manifest.size} bytes`);
      await harbor.hooks.backup.after.promise(event, manifest);
      return manifest;
    } catch (caught) {
      // When we aborted (signal), the method's own error ("unexpected end of data") is a consequence, not the cause.
      const error = abort.signal.aborted ? abort.signal.reason : caught;
      writer.abort(error instanceof Error ? error : new Error(String(error)));
      await writer.drain(); // the FAILED manifest must be the last write of this backup
      const failure =
        error instanceof HarborError
          ? error
          : new HarborError(`backup ${id} of ${server.name} failed: ${errorMessage(error)}`, {
              cause: error,
              hint: 'the backup is marked FAILED and will never be restored; fix the cause and take a new one',
            });
      manifest.status = 'FAILED';
      manifest.stopTime = new Date().toISOString();
      manifest.error = { message: failure.message, hint: failure.hint };
      manifest.files = files;
      delete manifest.process;
      // A FAILED manifest must stay readable (list-backups, delete): without the entries that made it fail.
      if (!isValidManifest(manifest, placeOf(repository, manifest))) manifest.files = [];
      await repository.writeManifest(manifest).catch((writeError) => {
        harbor.logger.warn(`could not mark backup ${id} FAILED in ${repository.location}: ${errorMessage(writeError)}`);
      });
      await harbor.hooks.backup.failed.promise(event, failure).catch(() => {});
      announced.add(failure);
      throw failure;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    await lock.release().catch(() => {});
  }
}

function placeOf(repository: Repository, manifest: BackupManifest): ManifestPlace {
  return { id: manifest.id, server: repository.server, where: `${repository.name} (${repository.location})`, systemIdentifier: manifest.systemIdentifier };
}

function checkRecorded(manifest: BackupManifest, place: ManifestPlace): void {
  try {
    validateManifest(manifest, place);
  } catch (error) {
    if (!(error instanceof InvalidManifestError)) throw error;
    throw new HarborError(`backup ${manifest.id} of ${manifest.server} recorded ${error.entry !== undefined ? `an entry ${JSON.stringify(error.entry)} that pgharbor will not store` : 'a manifest pgharbor will not store'}: ${error.reason}`, {
      hint: 'restore makes links only for tablespaces, and takes only paths a data directory can hold: replace such a link by what it points to; the backup is marked FAILED',
      cause: error,
    });
  }
}

function isValidManifest(manifest: BackupManifest, place: ManifestPlace): boolean {
  try {
    validateManifest(manifest, place);
    return true;
  } catch {
    return false;
  }
}

/** Backups whose writer died (kill -9, crash) are marked FAILED for good, so they never look in progress. */
async function failOrphans(repository: Repository, harbor: Harbor): Promise<void> {
  for (const manifest of await repository.listManifests()) {
    if (!isOrphan(manifest) || manifest.deleting) continue; // one being deleted is finished by the deletion, not rewritten
    manifest.status = 'FAILED';
    manifest.error = orphanError(manifest);
    delete manifest.process;
    await repository.writeManifest(manifest);
    harbor.logger.warn(`backup ${manifest.id} of ${repository.server} was interrupted earlier; marked FAILED`);
  }
}

/** Local directory of a backup's plain file tree, when the repository can hold one (a local filesystem, not encrypted). */
function treeOf(repository: Repository, backupId: string): string | undefined {
  if (!repository.storage.localPath || repository.codec.encryption !== 'none') return undefined;
  return repository.storage.localPath(repository.treePrefix(backupId).slice(0, -1));
}

function treeBytes(files: ManifestFile[], reusedBytes: number): number {
  const inTree = files.reduce((sum, f) => sum + (f.object !== undefined ? f.size : 0), 0);
  return Math.max(0, inTree - reusedBytes);
}

async function uniqueBackupId(repository: Repository, date: Date): Promise<string> {
  const base = backupIdFor(date);
  const existing = new Set(await repository.listBackupIds());
  if (!existing.has(base)) return base;
  for (let n = 1; ; n++) if (!existing.has(`${base}_${n}`)) return `${base}_${n}`;
}
