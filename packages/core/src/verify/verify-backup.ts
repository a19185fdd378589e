import { displayStatus } from '../repository/backup-status.js';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest, ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { resolveBackup } from '../restore/resolve-backup.js';
import { ChunkReader } from '../restore/chunk-reader.js';
import { decodeFile } from '../codec/backup-codec.js';
import { givePooledBuffer } from '../codec/buffer-pool.js';
import { digestAlgorithmOf, emptyDigest, fileHasher, matchesRecorded, recordedDigest } from '../codec/file-digest.js';
import { storedObjectKey } from '../repository/stored-object.js';
import { verifyWal, type WalVerification } from './verify-wal.js';
import { runPgVerifybackup, type PgVerifybackupResult } from './pg-verifybackup.js';
import { ContainedTree, FILE_CREATE_FLAGS } from '../restore/contained-tree.js';
import { checkChain } from '../repository/chain-check.js';
import { readBlockMap } from '../blocks/read-block-map.js';
import { restoreRelationFile } from '../blocks/restore-relation-file.js';

export interface VerifyProblem {
  /** What is wrong: a stored file, a bundle, a WAL file, the manifest, the key, or pg_verifybackup's finding. */
  kind: 'file' | 'bundle' | 'wal' | 'manifest' | 'key' | 'pg_verifybackup';
  /** The file (path in the data directory, or WAL file name) when there is one. */
  file?: string;
  message: string;
}

export interface VerifyOptions {
  /** A backup id, "latest"/"oldest"; default every DONE backup. */
  backupId?: string;
  repo?: number;
  /** Also check the WAL: the backup's range present and readable, and no gap after it in the archive. */
  wal?: boolean;
  /** Bundles read in parallel. */
  jobs?: number;
  /** Also restore into a temporary directory and run PostgreSQL's pg_verifybackup against its backup_manifest. */
  pgVerifybackup?: boolean;
  /** Where pg_verifybackup's temporary copy goes (default the system temp dir). */
  tempDir?: string;
  onProgress?: (bytes: number, total: number) => void;
}

export interface BackupVerification {
  backupId: string;
  status: string;
  files: number;
  /** Original bytes checked. */
  bytes: number;
  /** Bytes read from the repository. */
  storedBytes: number;
  problems: VerifyProblem[];
  wal?: WalVerification;
  pgVerifybackup?: PgVerifybackupResult;
  seconds: number;
}

export interface VerifyReport {
  server: string;
  repository: string;
  backups: BackupVerification[];
  /** Problems over all backups (and the WAL). */
  problems: number;
  seconds: number;
}

/**
 * `pgharbor verify`: re-read every stored file of a backup from the
 * repository, decrypt and decompress it, and check its size and digest;
 * optionally the WAL it needs and the archive after it, and PostgreSQL's
 * own pg_verifybackup. Every problem is collected with the file it
 * concerns; nothing stops at the first one.
 */
export async function runVerify(harbor: Harbor, server: ServerHandle, options: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now();
  const repository = await server.repository(options.repo);
  let manifests: BackupManifest[];
  if (options.backupId) manifests = [await resolveBackup(repository, options.backupId)];
  else manifests = (await repository.listManifests()).filter((m) => displayStatus(m) === 'DONE');
  if (manifests.length === 0) {
    throw new HarborError(`server ${server.name} has no completed backup in ${repository.name} (${repository.location}) to verify`, { hint: `take one with: pgharbor backup ${server.name}` });
  }
  const total = manifests.reduce((sum, m) => sum + m.size, 0);
  let done = 0;
  const backups: BackupVerification[] = [];
  const walChecked = new Map<string, VerifyProblem | null>(); // each archived segment is read once per run
  for (const manifest of manifests) {
    const result = await verifyBackup(harbor, server, repository, manifest, options, walChecked, (bytes) => {
      done += bytes;
      options.onProgress?.(done, total);
    });
    backups.push(result);
  }
  return { server: server.name, repository: repository.name, backups, problems: backups.reduce((sum, b) => sum + b.problems.length, 0), seconds: (Date.now() - started) / 1000 };
}

async function verifyBackup(
  harbor: Harbor,
  server: ServerHandle,
  repository: Repository,
  backup: BackupManifest,
  options: VerifyOptions,
  walChecked: Map<string, VerifyProblem | null>,
  progress: (bytes: number) => void,
): Promise<BackupVerification> {
  const started = Date.now();
  const problems: VerifyProblem[] = [];
  const result: BackupVerification = { backupId: backup.id, status: backup.status, files: 0, bytes: 0, storedBytes: 0, problems, seconds: 0 };
  if (displayStatus(backup) !== 'DONE') {
    problems.push({ kind: 'manifest', message: `backup ${backup.id} is ${displayStatus(backup)}, not restorable${backup.error ? `: ${backup.error.message}` : ''}` });
    return result;
  }
  const files = backup.files.filter((f) => f.type === 'file');
  result.files = files.length;

  if (files.some((f) => (f.encryption ?? 'none') !== 'none')) {
    try {
      await repository.codec.key();
    } catch (error) {
      problems.push({ kind: 'key', message: `cannot decrypt backup ${backup.id}: ${errorMessage(error)}` });
      result.seconds = (Date.now() - started) / 1000;
      return result;
    }
  }

  // pg_verifybackup needs a plain copy: written while verifying, so every file is read once.
  let copyDir: string | undefined;
  let skipped: string | undefined;
  if (options.pgVerifybackup) {
    if (!backup.pgBackupManifest) skipped = `backup ${backup.id} has no PostgreSQL backup_manifest (the method did not produce one)`;
    else copyDir = await fs.mkdtemp(path.join(options.tempDir ?? os.tmpdir(), `pgharbor-verify-${backup.id}-`));
  }
  const copy = copyDir ? new ContainedTree(copyDir) : undefined;
  try {
    const groups = groupByBundle(repository, backup, files.filter((f) => !f.blockMap), problems);
    await verifyBlockMapped(repository, backup, files.filter((f) => f.blockMap), problems, copy, options.tempDir, (file) => {
      result.bytes += file.size;
      progress(file.size);
    });
    const queue = [...groups];
    const jobs = Math.max(1, options.jobs ?? 2);
    await Promise.all(
      Array.from({ length: Math.min(jobs, queue.length) }, async () => {
        for (let group = queue.shift(); group; group = queue.shift()) {
          await verifyGroup(repository, backup.id, group, problems, copy, (file, stored) => {
            result.bytes += file.size;
            result.storedBytes += stored;
            progress(file.size);
          });
        }
      }),
    );
    if (backup.pgBackupManifest && !(await repository.storage.stat(repository.pgBackupManifestKey(backup.id)))) {
      problems.push({ kind: 'manifest', file: 'backup_manifest', message: `PostgreSQL's backup_manifest of ${backup.id} is missing from the repository` });
    }
    if (options.wal) {
      result.wal = await verifyWal(repository, backup, server.name, walChecked);
      problems.push(...result.wal.problems);
    }
    if (options.pgVerifybackup) {
      if (skipped) result.pgVerifybackup = { ran: false, skipped, problems: [] };
      else if (problems.some((p) => p.kind === 'file' || p.kind === 'bundle')) result.pgVerifybackup = { ran: false, skipped: 'the backup has damaged files (reported above)', problems: [] };
      else {
        result.pgVerifybackup = await runPgVerifybackup(server, repository, backup, copy!, harbor.logger);
        problems.push(...result.pgVerifybackup.problems.map((message): VerifyProblem => ({ kind: 'pg_verifybackup', message })));
      }
    }
  } finally {
    if (copyDir) await fs.rm(copyDir, { recursive: true, force: true });
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

interface Group {
  key: string;
  files: ManifestFile[];
}

function groupByBundle(repository: Repository, backup: BackupManifest, files: ManifestFile[], problems: VerifyProblem[]): Group[] {
  const groups = new Map<string, Group>();
  const empty: Group = { key: '', files: [] };
  for (const file of files) {
    const key = storedObjectKey(repository, backup.id, file);
    if (key === undefined) {
      if (file.size > 0) problems.push({ kind: 'manifest', file: file.path, message: `${file.path}: the manifest says ${file.size} bytes but stores none` });
      else empty.files.push(file);
      continue;
    }
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { key, files: [] }));
    group.files.push(file);
  }
  for (const group of groups.values()) group.files.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
  return empty.files.length ? [...groups.values(), empty] : [...groups.values()];
}

async function verifyGroup(
  repository: Repository,
  backupId: string,
  group: Group,
  problems: VerifyProblem[],
  copy: ContainedTree | undefined,
  onFile: (file: ManifestFile, stored: number) => void,
): Promise<void> {
  if (group.key === '') {
    for (const file of group.files) {
      if (recordedDigest(file) && !matchesRecorded(file, emptyDigest(digestAlgorithmOf(file)))) problems.push({ kind: 'manifest', file: file.path, message: `${file.path}: empty, but the manifest's checksum is not that of an empty file` });
      if (copy) await writeCopy(copy, file, []);
      onFile(file, 0);
    }
    return;
  }
  const bundleKey = group.key;
  const info = await repository.storage.stat(bundleKey);
  if (!info) {
    for (const file of group.files) problems.push({ kind: 'bundle', file: file.path, message: `${file.path}: its bundle ${bundleKey} is missing from the repository` });
    return;
  }
  const first = group.files[0].offset ?? 0;
  const last = group.files.at(-1)!;
  const end = (last.offset ?? 0) + (last.storedSize ?? last.size);
  const reachable = Math.min(end, info.size);
  const reader = new ChunkReader(await repository.storage.get(bundleKey, { offset: first, length: reachable - first }));
  let position = first;
  try {
    for (const file of group.files) {
      const stored = file.storedSize ?? file.size;
      if (file.offset! + stored > info.size) {
        problems.push({ kind: 'bundle', file: file.path, message: `${file.path}: its stored bytes end at ${file.offset! + stored}, past the end of ${bundleKey} (${info.size} bytes): the bundle is truncated` });
        continue;
      }
      if (file.offset! > position) await reader.skip(file.offset! - position);
      position = file.offset! + stored;
      let consumed = 0;
      const counted = (async function* () {
        for await (const chunk of reader.take(stored)) {
          consumed += chunk.length;
          yield chunk;
        }
      })();
      const hash = fileHasher(digestAlgorithmOf(file));
      let size = 0;
      let handle: fs.FileHandle | undefined;
      try {
        if (copy) handle = await openCopy(copy, file);
        for await (const chunk of decodeFile(repository, backupId, file, counted)) {
          hash.update(chunk);
          size += chunk.length;
          if (handle) await handle.write(chunk);
          givePooledBuffer(chunk); // a decoded frame goes back to the decoder's pool (anything else is ignored)
        }
        const actual = hash.digest();
        if (size !== file.size) problems.push({ kind: 'file', file: file.path, message: `${file.path}: ${size} bytes after decoding, the manifest says ${file.size}` });
        else if (recordedDigest(file) && !matchesRecorded(file, actual)) problems.push({ kind: 'file', file: file.path, message: `${file.path} does not match its checksum (expected ${recordedDigest(file)}, got ${actual})` });
      } catch (error) {
        const message = errorMessage(error);
        problems.push({ kind: 'file', file: file.path, message: message.includes(file.path) ? message : `${file.path}: ${message}` });
      } finally {
        await handle?.close();
      }
      if (consumed < stored) await reader.skip(stored - consumed); // resynchronise after a file that failed half-way
      onFile(file, stored);
    }
  } catch (error) {
    problems.push({ kind: 'bundle', message: `${bundleKey}: ${errorMessage(error)}` });
  } finally {
    await reader.close();
  }
}

/**
 * Block-mapped files: every link of the chain present and DONE, each map
 * sound, each block's digest and the whole file's sha256 as restore checks
 * them, by restoring the file into the copy (or a scratch file).
 */
async function verifyBlockMapped(
  repository: Repository,
  backup: BackupManifest,
  files: ManifestFile[],
  problems: VerifyProblem[],
  copy: ContainedTree | undefined,
  tempDir: string | undefined,
  onFile: (file: ManifestFile) => void,
): Promise<void> {
  if (files.length === 0) return;
  let chain: Set<string>;
  try {
    chain = new Set((await checkChain(repository, backup)).map((m) => m.id));
  } catch (error) {
    problems.push({ kind: 'manifest', message: errorMessage(error) });
    return;
  }
  const scratch = copy ? undefined : await fs.mkdtemp(path.join(tempDir ?? os.tmpdir(), `pgharbor-verify-${backup.id}-`));
  const present = new Map<string, Promise<boolean>>();
  const exists = (key: string) => {
    if (!present.has(key)) present.set(key, repository.storage.stat(key).then((info) => Boolean(info)));
    return present.get(key)!;
  };
  try {
    for (const file of files) {
      const key = repository.bundleKey(file.reference ?? backup.id, file.bundle!);
      if (!(await exists(key))) {
        problems.push({ kind: 'bundle', file: file.path, message: `${file.path}: its bundle ${key} is missing from the repository` });
        continue;
      }
      const target = copy ? await copy.makeParentOf(file.path) : path.join(scratch!, 'file');
      try {
        await restoreRelationFile(repository, file, await readBlockMap(repository, backup.id, file, chain), target, false);
      } catch (error) {
        const message = errorMessage(error);
        problems.push({ kind: 'file', file: file.path, message: message.includes(file.path) ? message : `${file.path}: ${message}` });
      } finally {
        if (scratch) await fs.rm(target, { force: true });
      }
      onFile(file);
    }
  } finally {
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
  }
}

/** The copy is written as restore writes: inside its directory, through no link (contained-tree.ts). */
async function openCopy(copy: ContainedTree, file: ManifestFile): Promise<fs.FileHandle> {
  return fs.open(await copy.makeParentOf(file.path), FILE_CREATE_FLAGS, 0o600);
}

async function writeCopy(copy: ContainedTree, file: ManifestFile, chunks: Buffer[]): Promise<void> {
  const handle = await openCopy(copy, file);
  try {
    for (const chunk of chunks) await handle.write(chunk);
  } finally {
    await handle.close();
  }
}
