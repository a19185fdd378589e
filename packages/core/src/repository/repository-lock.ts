import { acquireLock as acquireStoreLock, type HeldLock } from '../lock/lock.js';
import type { Repository } from './repository.js';

export type { HeldLock } from '../lock/lock.js';
export { isAlive } from '../lock/lock.js';

/** The key of a server's lock in a repository (docs/repository-format.md). */
export function lockKey(repository: Repository, name: string): string {
  return `${repository.server}/locks/${name}.lock`;
}

/**
 * A server's lock in one repository, e.g. "backup" (held by backup, delete,
 * expire, keep and cron's sweep, so that none of them races another), over
 * the repository's own storage driver: see lock/lock.ts.
 */
export function acquireLock(repository: Repository, name: string, operation: string): Promise<HeldLock> {
  return acquireStoreLock(repository.storage, lockKey(repository, name), operation, { subject: repository.server });
}
