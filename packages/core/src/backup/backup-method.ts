import type { Readable } from 'node:stream';
import type { JsonSchema } from '../config/json-schema.js';
import type { ServerHandle } from '../server-handle.js';
import type { BackupManifest, BackupType, ManifestFile, TablespaceInfo } from '../repository/manifest.js';
import type { Logger } from '../log.js';
import type { Repository } from '../repository/repository.js';

/**
 * A backup method copies a running cluster into the repository through the
 * sink the core hands it. The core owns everything around it: locks, the
 * identity check, the manifest's life (STARTED → DONE/FAILED) and hooks.
 */
export interface BackupMethod {
  /** JSON schema of the server options this method reads, merged into the server section's schema. */
  serverOptions?: Record<string, JsonSchema>;
  run(context: MethodContext): Promise<MethodResult>;
  /**
   * True when the method stores its files through `sink.ingestTar`, which
   * takes differential and incremental backups (block maps); other methods
   * are refused `--type diff|incr`.
   */
  incremental?: boolean;
}

export interface MethodContext {
  server: ServerHandle;
  backupId: string;
  label: string;
  sink: BackupSink;
  logger: Logger;
  /** Aborted when the backup must stop (signal, failure elsewhere). */
  signal: AbortSignal;
  /** Report expected total bytes when known, for progress display. */
  setExpectedBytes(bytes: number): void;
  /** The repository this backup goes to (read it, e.g. for archived WAL; write only through the sink). */
  repository: Repository;
  /** full, or diff/incr (only for a method that says `incremental`): the sink stores changes against the parent. */
  type: BackupType;
  /** The backup a diff/incr is taken against (undefined for a full). */
  parent?: BackupManifest;
  /** Server options overridden for this run from the command line (e.g. reuse_backup). */
  overrides: Record<string, unknown>;
}

export interface IngestOptions {
  /** Prefix for every path in the tar, e.g. "pg_tblspc/16385" for a tablespace tar. */
  pathPrefix?: string;
  /** Small files to hand back to the method (e.g. "backup_label"). They are stored too, unless skipped. */
  capture?: string[];
  /**
   * PostgreSQL 17+ incremental files (`INCREMENTAL.<relfile>`, from
   * BASE_BACKUP (INCREMENTAL)) are completed from the parent backup's block
   * maps and recorded under the relation file's own name.
   */
  incrementalFiles?: boolean;
  /** Captured files to store changed (e.g. backup_label without the lines only pg_combinebackup reads). */
  rewrite?: Record<string, (content: Buffer) => Buffer>;
  /** Paths not to store as data files (e.g. "backup_manifest", which is kept beside the manifest instead). */
  skip?: string[];
}

export interface BackupSink {
  /** Parse a tar stream and store every entry, streaming, with checksums. Resolves with the captured files. */
  ingestTar(tar: Readable, options?: IngestOptions): Promise<Map<string, Buffer>>;
  /** Keep PostgreSQL's own backup_manifest beside ours (for pg_verifybackup). */
  storePgBackupManifest(content: Buffer): Promise<void>;
  /** Store one file's bytes (e.g. read from a local copy) into the backup's bundles and record it. */
  storeFile(entry: FileEntry, content: AsyncIterable<Buffer> | Buffer[]): Promise<ManifestFile>;
  /**
   * Record a file, directory or symlink whose bytes need no storing here:
   * a file the method wrote into `tree()`, or one reused from an earlier
   * backup (`reference`). `reusedBytes`: how much of it was not stored again.
   */
  record(entry: ManifestFile, reusedBytes?: number): void;
  /**
   * A local directory where the method may write this backup's files itself,
   * as a plain tree (object keys `<server>/trees/<id>/<path>`), or undefined
   * when the repository is not a local filesystem or is encrypted.
   * `previousTree(id)` is the same directory of an earlier backup.
   */
  tree(): string | undefined;
  previousTree(backupId: string): string | undefined;
  /** The newest DONE backup of this server in this repository by the same method: what reuse starts from. */
  previousBackup(): Promise<BackupManifest | undefined>;
}

/** A file's description before it is stored: path, mode, mtime. */
export type FileEntry = Pick<ManifestFile, 'path' | 'mode' | 'mtime'> & { size?: number };

export interface MethodResult {
  startLsn: string;
  stopLsn: string;
  checkpointLsn?: string;
  startWal: string;
  stopWal: string;
  timeline: number;
  startTime?: Date;
  /** True when the WAL from startLsn to stopLsn is inside the backup. */
  walIncluded: boolean;
  tablespaces: TablespaceInfo[];
  /** How an earlier backup was reused (link, copy, reference), when it was. */
  reuse?: string;
}
