import type { Readable } from 'node:stream';

/**
 * The storage contract. A repository is a flat key space ("pga/backups/…");
 * keys use "/" as separator, never start with "/" and never contain "..".
 * Every driver (posix, S3, SFTP, a user's in-house store) implements exactly
 * this, and must pass the conformance suite in `@pgharbor/core/testing`.
 */
export interface StorageDriver {
  /** The config `type` that created this driver, e.g. "posix". */
  readonly type: string;
  /** Where the repository lives, for messages. Must not contain secrets. */
  readonly location: string;

  /**
   * Store an object atomically: until the returned promise resolves, readers
   * see the previous object (or none); after it resolves the whole object is
   * durable. A failed or aborted put leaves no partial object behind.
   */
  put(key: string, body: Readable | Uint8Array | string, options?: PutOptions): Promise<PutResult>;

  /**
   * Optional: `put` of a local file's bytes, for drivers that can store it
   * without reading it into memory (posix: a kernel-side copy). archive-push
   * uses it for every uncompressed WAL file; without it the file is read
   * and given to `put`.
   */
  putFile?(key: string, file: string, options?: PutOptions): Promise<PutResult>;
  /**
   * Optional: start storing a local file's bytes before their key is known.
   * The copy into the "directory" `prefix` (ending in "/") starts at once
   * and is made durable in the background; `commit(key)` then publishes it
   * under `key`, which must lie directly in that directory, with exactly
   * the guarantees of `putFile`; `discard()` drops it. Until commit, `list`
   * does not show it. archive-push names a WAL file by its checksum: with
   * this, the copy and its fsync run while the file is being hashed.
   */
  stageFile?(prefix: string, file: string): StagedFile;

  /** Stream an object, or a byte range of it. Rejects with StorageNotFoundError if missing. */
  get(key: string, range?: ByteRange): Promise<Readable>;

  /** Size and time of an object, or undefined when it does not exist. */
  stat(key: string): Promise<StorageObjectInfo | undefined>;

  /**
   * Every object whose key starts with `prefix`, in any order. Prefixes are
   * plain string prefixes: "a/b" matches "a/b/c" and "a/bc".
   */
  list(prefix: string): AsyncIterable<StorageObjectInfo>;

  /** Remove an object. Removing a missing object is not an error. */
  delete(key: string): Promise<void>;

  /**
   * Optional: remove everything stored under a "directory" prefix (ending
   * in "/"), including what `list` does not show: leftovers of puts whose
   * writer was killed (temp files, unfinished multipart uploads). Deleting
   * a backup uses it when the driver has it, so nothing half-written stays.
   */
  deletePrefix?(prefix: string): Promise<void>;

  /**
   * Optional, for drivers whose objects are plain files on a local
   * filesystem: the file that holds (or will hold) `key`. Methods that
   * write file trees themselves (rsync with hard links to the previous
   * backup) write there directly; everything else goes through put/get.
   */
  localPath?(key: string): string;

  /** Release connections and handles. */
  close(): Promise<void>;
}

export interface PutOptions {
  /**
   * Create-only: reject with StorageConflictError when the key already
   * exists, without touching it (WAL files and locks rely on this).
   */
  ifNotExists?: boolean;
}

/** A file being copied by `stageFile`, waiting for its key. */
export interface StagedFile {
  /** Publish the copy under `key` (atomic and durable when this resolves); rejects like `putFile` would. */
  commit(key: string, options?: PutOptions): Promise<PutResult>;
  /** Drop the copy (waits for the copy to stop); a no-op after commit. */
  discard(): Promise<void>;
}

export interface PutResult {
  /** Bytes stored. */
  size: number;
}

export interface ByteRange {
  /** First byte, from 0. */
  offset: number;
  /** Number of bytes; omitted means to the end. */
  length?: number;
}

export interface StorageObjectInfo {
  key: string;
  size: number;
  mtime: Date;
}

export class StorageNotFoundError extends Error {
  readonly key: string;
  constructor(key: string, location: string) {
    super(`${location}: object "${key}" does not exist`);
    this.name = 'StorageNotFoundError';
    this.key = key;
  }
}

export class StorageConflictError extends Error {
  readonly key: string;
  constructor(key: string, location: string) {
    super(`${location}: object "${key}" already exists`);
    this.name = 'StorageConflictError';
    this.key = key;
  }
}

/** Rejects keys that could escape the repository root or confuse drivers. */
export function assertValidKey(key: string): void {
  if (
    key.length === 0 ||
    key.startsWith('/') ||
    key.endsWith('/') ||
    key.includes('//') ||
    key.includes('\0') ||
    key.split('/').some((part) => part === '..' || part === '.')
  ) {
    throw new Error(`invalid storage key "${key}": keys are relative paths without "." or ".." parts`);
  }
}
