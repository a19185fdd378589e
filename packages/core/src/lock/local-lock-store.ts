import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { StorageConflictError, StorageNotFoundError, type PutOptions, type PutResult } from '../storage/storage-driver.js';
import { acquireLock, ownerIsDead, type HeldLock, type LockOptions, type LockOwner, type LockStore } from './lock.js';

/**
 * The lock store for this host's single-instance processes (receive-wal, the
 * async archiver, the notification flusher): a directory of the state dir,
 * one file per lock, with the storage contract's create-only semantics. A
 * put writes a private temp file and hard-links it to its name (link(2)
 * fails when the name exists), so a lock file appears whole or not at all,
 * exactly as the posix driver does it. Core cannot depend on the posix
 * driver (a sibling plugin), hence this small copy of its three primitives.
 */
export class LocalLockStore implements LockStore {
  constructor(readonly dir: string) {}

  get location(): string {
    return this.dir;
  }

  async put(key: string, body: Readable | Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    if (!(typeof body === 'string' || body instanceof Uint8Array)) throw new Error('LocalLockStore.put takes a string or bytes');
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.fileOf(key);
    const temp = path.join(this.dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    await fs.writeFile(temp, body, { mode: 0o600, flag: 'wx' });
    try {
      if (options.ifNotExists) {
        try {
          await fs.link(temp, file);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new StorageConflictError(key, this.location);
          throw error;
        }
      } else {
        await fs.rename(temp, file);
      }
    } finally {
      await fs.rm(temp, { force: true });
    }
    return { size: typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength };
  }

  async get(key: string): Promise<Readable> {
    try {
      return Readable.from([await fs.readFile(this.fileOf(key))]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new StorageNotFoundError(key, this.location);
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.fileOf(key), { force: true });
  }

  private fileOf(key: string): string {
    // Lock keys are file names (the lock module adds ".break-<hex>" suffixes); nothing else reaches here.
    if (key.length === 0 || key === '.' || key === '..' || key.includes('/') || key.includes('\0')) throw new Error(`invalid local lock name "${key}"`);
    return path.join(this.dir, key);
  }
}

/** Take `<dir>/<name>.lock`: one process of a kind per directory on this host. */
export function acquireLocalLock(dir: string, name: string, operation: string, options: LockOptions = {}): Promise<HeldLock> {
  return acquireLock(new LocalLockStore(dir), `${name}.lock`, operation, options);
}

/**
 * The live holder of `<dir>/<name>.lock`, read synchronously: archive-push
 * asks on every segment whether the archiver or the flusher runs, and a
 * promise chain costs it more than one small read.
 */
export function localLockHolder(dir: string, name: string): LockOwner | undefined {
  let owner: LockOwner;
  try {
    owner = JSON.parse(readFileSync(path.join(dir, `${name}.lock`), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
  if (!owner || typeof owner !== 'object' || !Number.isInteger(owner.pid) || owner.pid <= 0) return undefined;
  return ownerIsDead(owner) ? undefined : owner;
}
