/**
 * The backup manifest: everything needed to restore one backup and to judge
 * whether it can be trusted. It is the last object written for a backup;
 * only a manifest whose status is DONE describes a restorable backup.
 */
import type { DeletionMarker } from './deletion-marker.js';

/**
 * 2: relation files may be block-mapped (`blockMap`): their stored bytes
 * are super blocks and a map, which a reader of format 1 would misread
 * as the file itself. Format 1 manifests keep reading.
 */
export const MANIFEST_FORMAT_VERSION = 2;

export type BackupStatus = 'STARTED' | 'DONE' | 'FAILED';
export type BackupType = 'full' | 'incr' | 'diff';

export interface TablespaceInfo {
  oid: number;
  name: string;
  /** Location on the source host. */
  location: string;
}

export interface ManifestFile {
  /** Path relative to the data directory, "/" separated; tablespace contents live under "pg_tblspc/<oid>/". */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Bytes of the original file. */
  size: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  /** Permission bits (e.g. 0o600). */
  mode: number;
  /** Symlink target, for type "symlink". */
  linkTarget?: string;
  /**
   * Digest of the original bytes, `"<algorithm>:<hex>"` (codec/file-digest.ts:
   * blake3 today). Decides identity where a later backup reuses this file.
   */
  digest?: string;
  /** Before per-file algorithms: the sha256 of the original bytes, hex (read, never written). */
  sha256?: string;
  /** Where the bytes are stored: bundle number inside the backup named by `reference` (or this backup). */
  bundle?: number;
  /** Offset of the stored bytes inside the bundle. */
  offset?: number;
  /** Bytes as stored (after compression/encryption). */
  storedSize?: number;
  compression: string;
  encryption: string;
  /** Backup id that stores the bytes when they are reused from an earlier backup. */
  reference?: string;
  /**
   * Instead of a bundle: the bytes are stored, as they are, alone in the
   * object `<server>/trees/<backup id>/<object>` (e.g. "base/1/1259"): the
   * layout of methods that write plain file trees (rsync into a posix
   * repository, unchanged files hard-linked to the previous backup's).
   */
  object?: string;
  /**
   * A relation file stored as blocks (blocks/block-map.ts): `bundle`,
   * `offset` and `storedSize` span the super blocks this backup stored
   * for it and the block map that follows them, at `offset` inside the
   * bundle, `storedSize` bytes stored, `size` bytes decoded, with the
   * sha256 of the decoded map. The map points to each block's super block,
   * in this backup or an earlier one of its chain.
   */
  blockMap?: BlockMapInfo;
}

export interface BlockMapInfo {
  offset: number;
  storedSize: number;
  size: number;
  sha256: string;
}

export interface BundleInfo {
  /** Bundle number, from 1. */
  id: number;
  storedSize: number;
}

export interface ProcessInfo {
  pid: number;
  hostname: string;
}

export interface BackupManifest {
  formatVersion: number;
  id: string;
  server: string;
  status: BackupStatus;
  type: BackupType;
  parent?: string;
  method: string;
  label: string;
  /** ISO times. */
  startTime: string;
  stopTime?: string;
  startLsn?: string;
  stopLsn?: string;
  checkpointLsn?: string;
  startWal?: string;
  stopWal?: string;
  timeline?: number;
  /** server_version_num, e.g. 150018. */
  pgVersion: number;
  systemIdentifier: string;
  dataDirectory: string;
  tablespaces: TablespaceInfo[];
  /** True when the WAL needed for consistency is stored inside the backup (pg_wal/). */
  walIncluded: boolean;
  files: ManifestFile[];
  bundles: BundleInfo[];
  /** Sums over files: original bytes and stored bytes. */
  size: number;
  storedSize: number;
  /** Who is writing a STARTED backup: used to tell a running backup from an orphan. */
  process?: ProcessInfo;
  error?: { message: string; hint?: string };
  pgharborVersion: string;
  /** Kept by `pgharbor keep`: never expired (standalone keeps only the WAL that makes it consistent). */
  keep?: 'full' | 'standalone';
  /** Name of the PostgreSQL backup_manifest copy stored beside this manifest, when the method provides one. */
  pgBackupManifest?: boolean;
  /**
   * Original bytes this backup did not store again because they were
   * reused from an earlier backup (hard links or references): size minus
   * reusedSize is what the backup added ("incremental size").
   */
  reusedSize?: number;
  /** How the method reused an earlier backup: link (hard links), copy, reference (bundles of an earlier backup), off. */
  reuse?: string;
  /**
   * Not stored in the manifest: set by Repository when the backup's
   * deletion marker is there (its deletion began and has not finished).
   */
  deleting?: DeletionMarker;
}

/** A manifest as shown by list-backups: no file list. */
export type BackupSummary = Omit<BackupManifest, 'files'> & { fileCount: number };

export function summarize(manifest: BackupManifest): BackupSummary {
  const { files, ...rest } = manifest;
  return { ...rest, fileCount: files.filter((f) => f.type === 'file').length };
}

/** Backups sort by id, which is their start time (YYYYMMDDTHHMMSS). */
export function compareBackupIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
