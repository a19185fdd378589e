import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import {
  ConfigError,
  StorageConflictError,
  StorageNotFoundError,
  assertValidKey,
  type ByteRange,
  type Logger,
  type PutOptions,
  type PutResult,
  type StorageDriver,
  type StorageObjectInfo,
} from '@pgharbor/core';
import * as ops from './sftp-ops.js';
import { isConnectionLost, isNoSuchFile, sftpError } from './sftp-errors.js';
import type { SftpStorageOptions } from './sftp-options.js';
import { SftpSession } from './sftp-session.js';
import { isBodyFailure, readRange, writeBody } from './sftp-transfer.js';

type Body = Readable | Uint8Array | string;

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** How often a put retries when a concurrent delete removes the directory it writes into. */
const OPEN_ATTEMPTS = 10;

/**
 * A repository in a directory of a remote host, over SFTP: object "a/b/c"
 * is the file <path>/a/b/c. Writes go to a temp file next to the final name
 * (0600, directories 0700), are fsynced (fsync@openssh.com) and renamed over
 * it (posix-rename@openssh.com), or — create-only — hard-linked to it
 * (hardlink@openssh.com), which fails when it exists: exactly one writer wins.
 */
export class SftpStorage implements StorageDriver {
  readonly type = 'sftp';
  readonly location: string;
  /** The repository directory on the server. */
  readonly root: string;
  private readonly session: SftpSession;
  private readonly logger: Logger;
  /** Directories known to exist, to spare a mkdir round trip per put. */
  private readonly knownDirs = new Set<string>();
  private warnedNonAtomicRename = false;

  constructor(options: SftpStorageOptions, context: { logger: Logger; configDir: string }) {
    if (typeof options?.path !== 'string' || !options.path.startsWith('/')) {
      throw new ConfigError(`sftp storage path "${options?.path}" is not absolute`, 'give the absolute directory of the repository on the remote host');
    }
    this.root = posix.normalize(options.path).replace(/(.)\/$/, '$1');
    const user = options.user ?? os.userInfo().username;
    this.location = `sftp://${user}@${options.host}${options.port && options.port !== 22 ? `:${options.port}` : ''}${this.root}`;
    this.logger = context.logger;
    this.session = new SftpSession(options, { ...context, location: this.location });
  }

  async put(key: string, body: Body, options: PutOptions = {}): Promise<PutResult> {
    try {
      assertValidKey(key);
      if (options.ifNotExists && (await this.stat(key)) !== undefined) {
        // Fail before consuming a possibly large body; the hard link stays the authority.
        throw new StorageConflictError(key, this.location);
      }
      return await this.writeAtomically(key, body, options.ifNotExists === true);
    } catch (error) {
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw error;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    const { offset, length } = checkRange(range);
    const file = this.fileOf(key);
    return this.session.run(async (sftp) => {
      let handle: Buffer;
      try {
        handle = await ops.open(sftp, file, 'r');
      } catch (error) {
        if (isNoSuchFile(error)) throw new StorageNotFoundError(key, this.location);
        throw error;
      }
      try {
        // The open handle pins this version of the object: a concurrent overwrite or delete does not change what is read.
        const attrs = await ops.fstat(sftp, handle);
        if (!ops.isFile(attrs)) throw new StorageNotFoundError(key, this.location);
        const end = length === undefined ? attrs.size : Math.min(attrs.size, offset + length);
        return readRange(sftp, handle, Math.min(offset, end), end);
      } catch (error) {
        await ops.close(sftp, handle).catch(() => undefined);
        throw error;
      }
    }).catch((error: unknown) => {
      if (error instanceof StorageNotFoundError) throw error;
      throw sftpError(this.location, `cannot read object "${key}"`, error);
    });
  }

  async stat(key: string): Promise<StorageObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const attrs = await this.session.run((sftp) => ops.stat(sftp, this.fileOf(key)));
      return ops.isFile(attrs) ? { key, size: attrs.size, mtime: new Date(attrs.mtime * 1000) } : undefined;
    } catch (error) {
      if (isNoSuchFile(error)) return undefined;
      throw sftpError(this.location, `cannot stat object "${key}"`, error);
    }
  }

  /**
   * Reads only the directories that can hold matching keys: for prefix
   * "a/b/x" that is <root>/a/b, filtered to names starting with "x", and
   * everything below the matching entries.
   */
  async *list(prefix: string): AsyncIterable<StorageObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash === -1 ? '' : prefix.slice(0, slash);
    assertValidPrefix(prefix, dirKey);
    yield* this.walk(dirKey, prefix.slice(slash + 1));
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    const file = this.fileOf(key);
    await this.session
      .run(async (sftp) => {
        try {
          await ops.unlink(sftp, file);
        } catch (error) {
          if (isNoSuchFile(error)) return;
          // A key naming a directory of other objects is not an object: nothing to delete.
          if (await ops.stat(sftp, file).then(ops.isDirectory, () => false)) return;
          throw error;
        }
        await this.removeEmptyParents(sftp, posix.dirname(file));
      })
      .catch((error: unknown) => {
        throw sftpError(this.location, `cannot delete object "${key}"`, error);
      });
  }

  /** rm -rf of the prefix's directory: temp files of killed writers go too. */
  async deletePrefix(prefix: string): Promise<void> {
    if (!prefix.endsWith('/')) throw new Error(`deletePrefix("${prefix}"): the prefix must name a directory and end with "/"`);
    assertValidKey(prefix.slice(0, -1));
    const dir = this.fileOf(prefix.slice(0, -1));
    await this.session
      .run(async (sftp) => {
        await removeTree(sftp, dir);
        this.forgetDirectories(dir);
        await this.removeEmptyParents(sftp, posix.dirname(dir));
      })
      .catch((error: unknown) => {
        throw sftpError(this.location, `cannot delete the objects under "${prefix}"`, error);
      });
  }

  async close(): Promise<void> {
    await this.session.close();
  }

  private fileOf(key: string): string {
    return `${this.root}/${key}`;
  }

  /** Temp file, write, fsync, close, then rename (or link) onto the final name. */
  private async writeAtomically(key: string, body: Body, createOnly: boolean): Promise<PutResult> {
    const file = this.fileOf(key);
    const dir = posix.dirname(file);
    const temp = `${dir}/.${posix.basename(file)}.tmp-${randomBytes(6).toString('hex')}`;
    // Only a buffered body can be sent again over a new connection.
    const replayable = !(body instanceof Readable);
    const attempt = async (sftp: SFTPWrapper): Promise<PutResult> => {
      const handle = await this.openTemp(sftp, dir, temp);
      let size: number;
      try {
        try {
          size = await writeBody(sftp, handle, body);
          await ops.fsync(sftp, handle).catch((error: unknown) => {
            if (!ops.isUnsupportedExtension(error)) throw error; // servers without fsync@openssh.com: rely on close
          });
        } finally {
          await ops.close(sftp, handle);
        }
        await (createOnly ? this.link(sftp, key, temp, file) : this.replace(sftp, temp, file));
        return { size };
      } catch (error) {
        if (!isConnectionLost(error)) await ops.unlink(sftp, temp).catch(() => undefined);
        throw error;
      }
    };
    try {
      return replayable ? await this.session.run(attempt) : await attempt(await this.session.sftp());
    } catch (error) {
      if (error instanceof StorageConflictError) throw error;
      if (isBodyFailure(error)) throw error; // the caller's own failure, as is
      if (isConnectionLost(error)) {
        // Left behind: a temp file list() never shows; remove it over a new connection if we can.
        void this.session.sftp().then((sftp) => ops.unlink(sftp, temp)).catch(() => undefined);
      }
      throw sftpError(this.location, `cannot write object "${key}"`, error);
    }
  }

  /** Create the temp file (0600), creating its directory first; retried when a concurrent delete removes an emptied directory. */
  private async openTemp(sftp: SFTPWrapper, dir: string, temp: string): Promise<Buffer> {
    for (let attempt = 1; ; attempt++) {
      await this.ensureDirectory(sftp, dir);
      try {
        return await ops.open(sftp, temp, 'wx', { mode: FILE_MODE });
      } catch (error) {
        if (!isNoSuchFile(error) || attempt >= OPEN_ATTEMPTS) throw error;
        this.forgetDirectories(dir);
      }
    }
  }

  /** Replace the final name atomically; without posix-rename, remove then rename (not atomic, warned once). */
  private async replace(sftp: SFTPWrapper, temp: string, file: string): Promise<void> {
    try {
      await ops.posixRename(sftp, temp, file);
    } catch (error) {
      if (!ops.isUnsupportedExtension(error)) throw error;
      if (!this.warnedNonAtomicRename) {
        this.warnedNonAtomicRename = true;
        this.logger.warn(`sftp repository ${this.location}: the server lacks posix-rename@openssh.com; overwrites remove the old object first, so a reader may briefly find none`);
      }
      await ops.unlink(sftp, file).catch((e: unknown) => {
        if (!isNoSuchFile(e)) throw e;
      });
      await ops.rename(sftp, temp, file);
    }
  }

  /**
   * Create-only: link(2) — or, without hardlink@openssh.com, a plain SFTP
   * rename, which fails on an existing target too — so that exactly one of
   * several racing writers wins.
   */
  private async link(sftp: SFTPWrapper, key: string, temp: string, file: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await ops.hardlink(sftp, temp, file);
        await ops.unlink(sftp, temp);
        return;
      } catch (error) {
        if (ops.isUnsupportedExtension(error)) {
          try {
            await ops.rename(sftp, temp, file);
            return;
          } catch (renameError) {
            error = renameError;
          }
        }
        if (isConnectionLost(error)) throw error;
        // Servers answer a generic "Failure" when the target exists: look.
        if (await ops.stat(sftp, file).then(ops.isFile, () => false)) {
          await ops.unlink(sftp, temp).catch(() => undefined);
          throw new StorageConflictError(key, this.location);
        }
        // Gone by the time we looked (its owner removed it, e.g. a released lock): the name is free, try again.
        if (attempt >= LINK_ATTEMPTS) throw error;
      }
    }
  }

  /** mkdir -p with mode 0700. */
  private async ensureDirectory(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const missing: string[] = [];
    for (let current = dir; ; current = posix.dirname(current)) {
      const attrs = await ops.stat(sftp, current).catch((error: unknown) => {
        if (isNoSuchFile(error)) return undefined;
        throw error;
      });
      if (attrs) {
        if (!ops.isDirectory(attrs)) throw new Error(`${current} exists and is not a directory`);
        break;
      }
      missing.unshift(current);
      if (current === '/' || current === posix.dirname(current)) break;
    }
    for (const created of missing) {
      await ops.mkdir(sftp, created, { mode: DIR_MODE }).catch(async (error: unknown) => {
        // Created meanwhile by a concurrent put: fine.
        if (!(await ops.stat(sftp, created).then(ops.isDirectory, () => false))) throw error;
      });
    }
    this.knownDirs.add(dir);
  }

  private forgetDirectories(dir: string): void {
    for (const known of this.knownDirs) if (known === dir || known.startsWith(`${dir}/`)) this.knownDirs.delete(known);
  }

  /** Best effort: remove directories left empty by a delete, up to (not including) the root. */
  private async removeEmptyParents(sftp: SFTPWrapper, dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(`${this.root}/`)) {
      try {
        await ops.rmdir(sftp, dir);
      } catch {
        return; // not empty, already gone, or not ours to remove
      }
      this.forgetDirectories(dir);
      dir = posix.dirname(dir);
    }
  }

  private async *walk(dirKey: string, namePrefix: string): AsyncGenerator<StorageObjectInfo> {
    const dir = dirKey === '' ? this.root : this.fileOf(dirKey);
    let entries;
    try {
      entries = await this.session.run((sftp) => ops.readdir(sftp, dir));
    } catch (error) {
      if (isNoSuchFile(error)) return;
      throw sftpError(this.location, `cannot list "${dirKey}/"`, error);
    }
    entries.sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
    for (const entry of entries) {
      const name = entry.filename;
      if (name === '.' || name === '..' || !name.startsWith(namePrefix) || isTempName(name)) continue;
      const key = dirKey === '' ? name : `${dirKey}/${name}`;
      if (ops.isDirectory(entry.attrs)) {
        yield* this.walk(key, '');
      } else if (ops.isFile(entry.attrs)) {
        yield { key, size: entry.attrs.size, mtime: new Date(entry.attrs.mtime * 1000) };
      } else {
        // Symlinks and the like: an object only when they lead to a file.
        const info = await this.stat(key);
        if (info) yield info;
      }
    }
  }
}

export function createSftpStorage(options: SftpStorageOptions, context: { logger: Logger; configDir: string }): SftpStorage {
  return new SftpStorage(options, context);
}

/** Remove a directory and everything in it; a missing directory is fine. */
async function removeTree(sftp: SFTPWrapper, dir: string): Promise<void> {
  let entries;
  try {
    entries = await ops.readdir(sftp, dir);
  } catch (error) {
    if (isNoSuchFile(error)) return;
    throw error;
  }
  for (const entry of entries) {
    if (entry.filename === '.' || entry.filename === '..') continue;
    const child = `${dir}/${entry.filename}`;
    if (ops.isDirectory(entry.attrs)) await removeTree(sftp, child);
    else await ops.unlink(sftp, child).catch((error: unknown) => {
      if (!isNoSuchFile(error)) throw error;
    });
  }
  await ops.rmdir(sftp, dir).catch((error: unknown) => {
    if (!isNoSuchFile(error)) throw error;
  });
}

/** A create-only link that failed while its target came and went is tried again this often. */
const LINK_ATTEMPTS = 5;

/** Temp files are `.<name>.tmp-<random>`, next to their final name. */
function isTempName(name: string): boolean {
  return name.startsWith('.') && /\.tmp-[0-9a-f]{12}$/.test(name);
}

function checkRange(range: ByteRange | undefined): { offset: number; length: number | undefined } {
  if (range === undefined) return { offset: 0, length: undefined };
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new RangeError(`invalid byte range ${JSON.stringify(range)}: offset and length must be non-negative integers`);
  }
  return { offset, length };
}

/** A list prefix may end anywhere, but its complete directory parts must be valid key parts. */
function assertValidPrefix(prefix: string, dirKey: string): void {
  try {
    if (prefix.includes('\0') || prefix.startsWith('/')) throw new Error('invalid');
    if (dirKey !== '') assertValidKey(dirKey);
  } catch {
    throw new Error(`invalid storage prefix "${prefix}": prefixes are relative key paths without "." or ".." parts`);
  }
}
