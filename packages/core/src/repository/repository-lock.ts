import os from 'node:os';
import { HarborError } from '../errors.js';
import { getJson, putJson } from '../storage/storage-io.js';
import type { Repository } from './repository.js';

interface LockInfo {
  pid: number;
  hostname: string;
  since: string;
  operation: string;
}

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * A lock is an object created with put(ifNotExists) under
 * "<server>/locks/<name>.lock", so it works on every storage driver. A lock
 * left by a process that died on this host is taken over; one held from
 * another host is reported with its owner, since we cannot see its pid.
 */
export async function acquireLock(repository: Repository, name: string, operation: string): Promise<HeldLock> {
  const key = `${repository.server}/locks/${name}.lock`;
  const mine: LockInfo = { pid: process.pid, hostname: os.hostname(), since: new Date().toISOString(), operation };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await putJson(repository.storage, key, mine, true);
      return { release: () => repository.storage.delete(key) };
    } catch (error) {
      if ((error as Error).name !== 'StorageConflictError') throw error;
    }
    let holder: LockInfo;
    try {
      holder = await getJson<LockInfo>(repository.storage, key);
    } catch {
      continue; // released in between: try again
    }
    if (holder.hostname === mine.hostname && !isAlive(holder.pid)) {
      await repository.storage.delete(key); // its owner died: take it over
      continue;
    }
    throw new HarborError(
      `another ${holder.operation} of ${repository.server} is running (pid ${holder.pid} on ${holder.hostname}, since ${holder.since})`,
      { hint: `wait for it to finish; if that process is gone, remove ${key} from ${repository.location}` },
    );
  }
  throw new HarborError(`could not take the ${name} lock of ${repository.server} in ${repository.location}`, { hint: 'retry' });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
