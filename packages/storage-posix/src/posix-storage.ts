import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  ConfigError,
  StorageConflictError,
  StorageNotFoundError,
  assertValidKey,
  type ByteRange,
  type PutOptions,
  type PutResult,
  type StagedFile,
  type StorageDriver,
  type StorageObjectInfo,
} from '@pgharbor/core';
import { isTempName, tempNameFor } from './temp-names.js';
import { fsCode, storageIoError } from './storage-io-error.js';

export interface PosixStorageOptions {
  /** Absolute directory of the repository; created on first write. */
  path: string;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const READ_CHUNK = 1024 * 1024;
/** A write goes out once this much has been collected (see writeBody). */
const WRITE_BATCH = 1024 * 1024;
/** Linux's IOV_MAX. */
const MAX_IOVECS = 1024;
/** How often put retries when a concurrent delete removes the directory it writes into. */
const OPEN_ATTEMPTS = 10;

/**
 * A repository on a local or mounted filesystem: object "a/b/c" is the file
 * <root>/a/b/c. Writes go to a temp file in the same directory, are fsynced
 * and renamed (or, for create-only puts, hard-linked) onto the final name,
 * so readers only ever see whole objects.
 */
export class PosixStorage implements StorageDriver {
  readonly type = 'posix';
  readonly location: string;
  /** The absolute, normalized repository directory. */
  readonly root: string;

  constructor(options: PosixStorageOptions) {
    if (typeof options?.path !== 'string' || options.path.length === 0) {
      throw new ConfigError('posix storage needs a "path"', 'set storage.path to the absolute directory of the repository');
    }
    if (!path.isAbsolute(options.path)) {
      throw new ConfigError(
        `posix storage path "${options.path}" is not absolute`,
        'relative paths are resolved against the config file directory before the driver is created; pass an absolute path',
      );
    }
    this.root = path.resolve(options.path);
    this.location = this.root;
  }

  async put(key: string, body: Readable | Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    try {
      assertValidKey(key);
      const file = this.fileOf(key);
      if (options.ifNotExists && (await this.stat(key)) !== undefined) {
        // Fail before consuming a possibly large body; link(2) below stays the authority.
        throw new StorageConflictError(key, this.location);
      }
      return await this.writeAtomically(key, file, (handle) => writeBody(handle, body), options.ifNotExists === true);
    } catch (error) {
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw error;
    }
  }

  /** `put` of a local file, copied by the kernel (copy_file_range): its bytes never pass through this process. */
  async putFile(key: string, source: string, options: PutOptions = {}): Promise<PutResult> {
    assertValidKey(key);
    const file = this.fileOf(key);
    if (options.ifNotExists && (await this.stat(key)) !== undefined) throw new StorageConflictError(key, this.location);
    return this.writeAtomically(key, file, (handle, temp) => copyInto(handle, source, temp), options.ifNotExists === true);
  }

  /**
   * The copy (copy_file_range) and its fsync start now, into a temp file in
   * the prefix's directory; commit links or renames it onto the key as
   * putFile does. Directories are created (and made durable) by the copy.
   */
  stageFile(prefix: string, source: string): StagedFile {
    if (!prefix.endsWith('/')) throw new Error(`stageFile("${prefix}"): the prefix must name a directory and end with "/"`);
    assertValidKey(prefix.slice(0, -1));
    const dir = this.fileOf(prefix.slice(0, -1));
    const temp = path.join(dir, tempNameFor(path.basename(source), randomBytes(6).toString('hex')));
    const written = this.writeTemp(prefix, dir, temp, (handle) => copyInto(handle, source, temp));
    written.catch(() => {}); // reported by commit; writeTemp removes the temp file itself
    let state: 'staged' | 'committed' | 'discarded' = 'staged';
    return {
      commit: async (key, options = {}) => {
        assertValidKey(key);
        const file = this.fileOf(key);
        if (path.dirname(file) !== dir) throw new Error(`stageFile: key "${key}" is not directly under "${prefix}"`);
        if (state !== 'staged') throw new Error(`stageFile: the copy for "${prefix}" was already ${state}`);
        state = 'committed';
        const size = await written;
        await this.publish(key, dir, temp, file, options.ifNotExists === true);
        return { size };
      },
      discard: async () => {
        if (state !== 'staged') return;
        state = 'discarded';
        // No directory fsync: a temp file that comes back after a crash is skipped by list and removed with its prefix.
        await written.then(() => unlink(temp), () => undefined).catch(() => undefined);
      },
    };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    const { offset, end } = checkRange(range);
    const file = this.fileOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if (isMissing(error)) throw new StorageNotFoundError(key, this.location);
      throw storageIoError(this.location, `cannot read object "${key}"`, error);
    }
    // The open handle pins this version of the object: a concurrent overwrite
    // or delete does not change what this reader sees.
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new StorageNotFoundError(key, this.location);
      if (end !== undefined && end < offset) {
        await handle.close();
        return Readable.from([]);
      }
      return handle.createReadStream({ start: offset, end, highWaterMark: READ_CHUNK });
    } catch (error) {
      await handle.close().catch(() => undefined);
      if (error instanceof StorageNotFoundError) throw error;
      throw storageIoError(this.location, `cannot read object "${key}"`, error);
    }
  }

  async stat(key: string): Promise<StorageObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const info = await stat(this.fileOf(key));
      return info.isFile() ? { key, size: info.size, mtime: info.mtime } : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw storageIoError(this.location, `cannot stat object "${key}"`, error);
    }
  }

  /**
   * Walks only the directories that can hold matching keys: for prefix
   * "a/b/x" that is <root>/a/b, filtered to names starting with "x", and
   * everything below the matching entries.
   */
  async *list(prefix: string): AsyncIterable<StorageObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash === -1 ? '' : prefix.slice(0, slash);
    const namePrefix = prefix.slice(slash + 1);
    if (slash !== -1 || prefix.includes('\0')) assertValidPrefix(prefix, dirKey);
    yield* this.walk(dirKey, namePrefix);
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    const file = this.fileOf(key);
    try {
      await unlink(file);
    } catch (error) {
      // EISDIR/EPERM: the key names a directory of other objects, not an object.
      if (isMissing(error) || fsCode(error) === 'EISDIR') return;
      if (fsCode(error) === 'EPERM' && (await isDirectory(file))) return;
      throw storageIoError(this.location, `cannot delete object "${key}"`, error);
    }
    await fsyncDirectory(path.dirname(file)).catch((error: unknown) => {
      throw storageIoError(this.location, `cannot delete object "${key}"`, error);
    });
    await this.removeEmptyParents(path.dirname(file));
  }

  /** rm -rf of the prefix's directory: temp files of killed writers go too. */
  async deletePrefix(prefix: string): Promise<void> {
    if (!prefix.endsWith('/')) throw new Error(`deletePrefix("${prefix}"): the prefix must name a directory and end with "/"`);
    assertValidKey(prefix.slice(0, -1));
    const dir = this.fileOf(prefix.slice(0, -1));
    await rm(dir, { recursive: true, force: true });
    await this.removeEmptyParents(path.dirname(dir));
  }

  localPath(key: string): string {
    assertValidKey(key);
    return this.fileOf(key);
  }

  async close(): Promise<void> {
    // No connections or long-lived handles: readers own their file handles.
  }

  private fileOf(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  private async writeAtomically(key: string, file: string, write: (handle: FileHandle, temp: string) => Promise<number>, createOnly: boolean): Promise<PutResult> {
    const dir = path.dirname(file);
    const temp = path.join(dir, tempNameFor(path.basename(file), randomBytes(6).toString('hex')));
    const size = await this.writeTemp(key, dir, temp, write);
    await this.publish(key, dir, temp, file, createOnly);
    return { size };
  }

  /** Create `temp`, fill it and fsync it; on failure it is removed again. */
  private async writeTemp(key: string, dir: string, temp: string, write: (handle: FileHandle, temp: string) => Promise<number>): Promise<number> {
    const handle = await this.openTemp(key, dir, temp);
    try {
      try {
        const size = await write(handle, temp);
        await handle.sync();
        return size;
      } finally {
        await handle.close();
      }
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (!isFsError(error)) throw error;
      throw storageIoError(this.location, `cannot write object "${key}"`, error);
    }
  }

  /** Move a durable temp file onto its name (create-only: link, so exactly one writer wins) and fsync the directory. */
  private async publish(key: string, dir: string, temp: string, file: string, createOnly: boolean): Promise<void> {
    try {
      if (createOnly) {
        // link(2) fails with EEXIST instead of replacing: exactly one writer wins.
        try {
          await link(temp, file);
        } catch (error) {
          if (fsCode(error) === 'EEXIST') throw new StorageConflictError(key, this.location);
          throw error;
        }
        await unlink(temp);
      } else {
        await rename(temp, file);
      }
      await fsyncDirectory(dir);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (error instanceof StorageConflictError || !isFsError(error)) throw error;
      throw storageIoError(this.location, `cannot write object "${key}"`, error);
    }
  }

  /**
   * Create the temp file, creating its directory when it is missing (most
   * writes go to an existing one: one thread-pool round trip, not two);
   * retried because a concurrent delete may remove an empty directory.
   */
  private async openTemp(key: string, dir: string, temp: string): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await open(temp, 'wx', FILE_MODE);
      } catch (error) {
        if (fsCode(error) !== 'ENOENT' || attempt >= OPEN_ATTEMPTS) throw storageIoError(this.location, `cannot write object "${key}"`, error);
      }
      try {
        await this.ensureDirectory(dir);
      } catch (error) {
        throw storageIoError(this.location, `cannot write object "${key}"`, error);
      }
    }
  }

  /** mkdir -p with mode 0700, fsyncing the parent of every directory it creates. */
  private async ensureDirectory(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
    if (first === undefined) return;
    const created = [first];
    for (const part of path.relative(first, dir).split(path.sep).filter(Boolean)) {
      created.push(path.join(created[created.length - 1], part));
    }
    for (const createdDir of created) await fsyncDirectory(path.dirname(createdDir));
  }

  private async *walk(dirKey: string, namePrefix: string): AsyncGenerator<StorageObjectInfo> {
    const dir = dirKey === '' ? this.root : this.fileOf(dirKey);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw storageIoError(this.location, `cannot list "${dirKey}/"`, error);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (!entry.name.startsWith(namePrefix) || isTempName(entry.name)) continue;
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) {
        yield* this.walk(key, '');
      } else {
        // Regular files, and symlinks or unknown types that resolve to files.
        const info = await this.stat(key);
        if (info) yield info;
      }
    }
  }

  /** Best effort: remove directories left empty by a delete, up to (not including) the root. */
  private async removeEmptyParents(dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(this.root + path.sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty, already gone, or not ours to remove
      }
      dir = path.dirname(dir);
    }
  }
}

export function createPosixStorage(options: PosixStorageOptions): PosixStorage {
  return new PosixStorage(options);
}

async function writeBody(handle: FileHandle, body: Readable | Uint8Array | string): Promise<number> {
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    await writeFully(handle, bytes);
    return bytes.byteLength;
  }
  // for-await pulls one chunk at a time, so a fast producer waits for the disk.
  // Chunks that arrive while a write runs go out together in the next
  // writev: a backup's bundle comes in ~30 KB pieces (what a pipe delivers),
  // and one thread-pool write per piece cost more than the copy itself.
  let size = 0;
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let writing: Promise<void> | undefined;
  try {
    for await (const chunk of body) {
      const bytes: Uint8Array = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Uint8Array);
      if (bytes.byteLength === 0) continue;
      batch.push(bytes);
      batchBytes += bytes.byteLength;
      size += bytes.byteLength;
      if (batchBytes >= WRITE_BATCH || batch.length >= MAX_IOVECS) {
        await writing;
        writing = writevFully(handle, batch);
        writing.catch(() => {}); // awaited before the next batch or at the end
        batch = [];
        batchBytes = 0;
      }
    }
    await writing;
    if (batch.length) await writevFully(handle, batch);
  } finally {
    await writing?.catch(() => {}); // never leave a write running under the caller's close()
  }
  return size;
}

/** Write all of `buffers` at the current position, resuming after short writes. */
async function writevFully(handle: FileHandle, buffers: Uint8Array[]): Promise<void> {
  let pending = buffers;
  while (pending.length) {
    let { bytesWritten } = await handle.writev(pending);
    let skip = 0;
    while (skip < pending.length && bytesWritten >= pending[skip].byteLength) bytesWritten -= pending[skip++].byteLength;
    pending = pending.slice(skip);
    if (bytesWritten > 0) pending[0] = pending[0].subarray(bytesWritten);
  }
}

/** Fill the open temp file with a copy of `source` made by the kernel; returns its size. */
async function copyInto(handle: FileHandle, source: string, temp: string): Promise<number> {
  await copyFile(source, temp); // the open handle is the same inode: writeTemp's sync() makes the copy durable
  const [, info] = await Promise.all([handle.chmod(FILE_MODE), handle.stat()]); // copyFile gives the source's mode
  return info.size;
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.byteLength - written);
    written += bytesWritten;
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, 'r');
  } catch (error) {
    if (fsCode(error) === 'ENOENT') return; // removed concurrently: nothing left to make durable
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems (certain FUSE and network mounts) cannot fsync directories.
    if (fsCode(error) !== 'EINVAL' && fsCode(error) !== 'ENOTSUP') throw error;
  } finally {
    await handle.close();
  }
}

async function isDirectory(file: string): Promise<boolean> {
  return stat(file).then((info) => info.isDirectory(), () => false);
}

function checkRange(range: ByteRange | undefined): { offset: number; end: number | undefined } {
  if (range === undefined) return { offset: 0, end: undefined };
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new RangeError(`invalid byte range ${JSON.stringify(range)}: offset and length must be non-negative integers`);
  }
  return { offset, end: length === undefined ? undefined : offset + length - 1 };
}

/** A list prefix may end anywhere, but its complete directory parts must be valid key parts. */
function assertValidPrefix(prefix: string, dirKey: string): void {
  try {
    if (prefix.includes('\0')) throw new Error('NUL');
    if (dirKey !== '') assertValidKey(dirKey);
    else if (prefix.startsWith('/')) throw new Error('absolute');
  } catch {
    throw new Error(`invalid storage prefix "${prefix}": prefixes are relative key paths without "." or ".." parts`);
  }
}

function isMissing(error: unknown): boolean {
  const code = fsCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function isFsError(error: unknown): boolean {
  return fsCode(error) !== undefined;
}
