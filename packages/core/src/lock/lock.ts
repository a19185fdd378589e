import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { HarborError } from '../errors.js';
import type { StorageDriver } from '../storage/storage-driver.js';
import { readAll } from '../storage/storage-io.js';

/**
 * The one lock of pgharbor (pgBackRest's lock.c is the model: the owner is
 * checked before anything is released). A lock is an object created with a
 * create-only put; it holds its owner: a random token, plus pid, host,
 * operation and start time for messages. Only the primitives of the storage
 * contract are used (create-only put, get, delete), so the same code locks a
 * posix, S3 or SFTP repository, a user's storage plugin, and the local state
 * directory (local-lock-store.ts).
 *
 * Taking over a lock whose owner died (same host, pid gone): a create-only
 * "breaker" object `<key>.break-<dead owner's id>` is created first, and only
 * its winner may delete the dead owner's lock. The winner re-reads the lock,
 * deletes it only if it still carries that id, puts its own (create-only),
 * then releases the breaker. Why exactly one taker ends up holding the lock,
 * whatever the interleaving:
 *
 * 1. Nobody holds the lock without having won a create-only put of it, and
 *    the store lets exactly one of racing create-only puts win (the
 *    conformance suite checks it on every driver). So two holders at once
 *    need the lock object to be deleted while someone holds it.
 * 2. Who deletes the lock object: its owner (release compares the token
 *    first), or the winner of the breaker for the id it carries. An owner id
 *    is random and never carried by the lock again once deleted, so each
 *    breaker guards one incarnation of the lock only.
 * 3. A breaker for id T is won by one taker at a time (create-only). While
 *    the lock carries T and T's owner is dead, nobody but that breaker's
 *    winner deletes it: so between the winner's re-read (sees T) and its
 *    delete, the lock still carries T, and the delete removes the dead
 *    owner's lock and nothing else.
 * 4. A taker that read T earlier and wins the breaker after a takeover
 *    (the previous winner released it) re-reads the lock, finds another id
 *    (or none) and deletes nothing: a late breaker is harmless. Without the
 *    re-read, it would delete a live owner's lock (the bug this replaces).
 * 5. After deleting, the winner's own put is create-only: a taker arriving
 *    in between may take the lock first; the winner then simply lost.
 * 6. A taker killed while holding a breaker leaves it behind: the breaker is
 *    itself a lock with a dead owner, broken by the same rule one level down
 *    (`<key>.break-<T>.break-<U>`), at most MAX_BREAK_DEPTH levels.
 * A live owner is never judged dead: its pid answers on its host, and a lock
 * held from another host is never taken over (we cannot see its pid; the
 * message says so). Hostnames must therefore be unique among the hosts that
 * share a repository.
 */
export interface LockOwner {
  /** Random, 128 bits, hex: who holds the lock. */
  token: string;
  pid: number;
  hostname: string;
  operation: string;
  since: string;
}

/** What a lock needs of a store: the storage contract's create-only put, get and delete. */
export type LockStore = Pick<StorageDriver, 'put' | 'get' | 'delete' | 'location'>;

export interface HeldLock {
  readonly owner: LockOwner;
  /** Delete the lock if it is still ours; false when it is not (removed or replaced by hand). */
  release(): Promise<boolean>;
}

export interface LockOptions {
  /** What the lock protects, for messages: "backup of pga" (default: the key). */
  subject?: string;
  /** How to describe a busy holder's work (default: its operation). */
  hint?: (holder: Partial<LockOwner>, key: string) => string;
  /** How long to wait while another taker is breaking a dead owner's lock (default 10 s). */
  breakWaitMs?: number;
  /**
   * Whether a holder is gone (default: a pid of this host that does not
   * exist). A local lock may add a check that guards against a recycled pid;
   * it must never say "gone" of a live holder.
   */
  ownerGone?: (owner: Partial<LockOwner>) => boolean;
}

const MAX_BREAK_DEPTH = 3;
const TOKEN = /^[0-9a-f]{32}$/;

/** A lock object as read: its owner and the id breakers and release compare. */
interface ReadLock {
  owner: Partial<LockOwner>;
  /** The token when it is well formed, else a hash of the bytes (a lock from an older pgharbor, or garbage). */
  id: string;
}

export function newLockOwner(operation: string): LockOwner {
  return { token: randomBytes(16).toString('hex'), pid: process.pid, hostname: os.hostname(), operation, since: new Date().toISOString() };
}

/** Take the lock `key`, or fail with a HarborError naming its holder. */
export async function acquireLock(store: LockStore, key: string, operation: string, options: LockOptions = {}): Promise<HeldLock> {
  return acquireAt(store, key, newLockOwner(operation), options, 0);
}

async function acquireAt(store: LockStore, key: string, mine: LockOwner, options: LockOptions, depth: number): Promise<HeldLock> {
  const deadline = Date.now() + (options.breakWaitMs ?? 10_000);
  for (let round = 0; ; round++) {
    if (await createLock(store, key, mine)) return heldLock(store, key, mine);
    const holder = await readLock(store, key);
    if (!holder) continue; // released in between: try again
    if (!(options.ownerGone ?? ownerIsDead)(holder.owner)) throw busyError(store, key, holder.owner, options);
    const outcome = await breakDeadLock(store, key, holder, mine, options, depth);
    if (outcome === 'won') return heldLock(store, key, mine);
    if (outcome === 'breaking') {
      // Another taker is breaking it: wait for it to finish, then look again (it will hold the lock, or be gone).
      if (Date.now() > deadline) throw busyError(store, key, holder.owner, options, 'is being taken over by another process');
      await sleep(20 + Math.floor(Math.random() * 30) + Math.min(round, 10) * 10);
    }
  }
}

/**
 * Win the breaker for the dead owner's id, then replace its lock by ours.
 * 'lost': the lock was free and another taker's create-only put won it.
 */
async function breakDeadLock(
  store: LockStore,
  key: string,
  dead: ReadLock,
  mine: LockOwner,
  options: LockOptions,
  depth: number,
): Promise<'won' | 'lost' | 'breaking'> {
  if (depth >= MAX_BREAK_DEPTH) {
    throw new HarborError(`the lock ${key} in ${store.location} was left by several killed processes`, {
      hint: `check that no pgharbor process works on it, then remove ${key} and the objects beside it whose names start with it`,
    });
  }
  let breaker: HeldLock;
  try {
    breaker = await acquireAt(store, `${key}.break-${dead.id}`, newLockOwner(`takeover of ${key}`), { ...options, breakWaitMs: 0 }, depth + 1);
  } catch (error) {
    if (error instanceof BusyLockError) return 'breaking';
    throw error;
  }
  try {
    const current = await readLock(store, key);
    // Point 3 of the argument above: while the lock carries the dead id, only we (the breaker's owner) delete it.
    if (current?.id === dead.id) await store.delete(key);
    return (await createLock(store, key, mine)) ? 'won' : 'lost';
  } finally {
    await breaker.release();
  }
}

async function createLock(store: LockStore, key: string, owner: LockOwner): Promise<boolean> {
  try {
    await store.put(key, JSON.stringify(owner) + '\n', { ifNotExists: true });
    return true;
  } catch (error) {
    if ((error as Error).name === 'StorageConflictError') return false;
    throw error;
  }
}

async function readLock(store: LockStore, key: string): Promise<ReadLock | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readAll(await store.get(key));
  } catch (error) {
    if ((error as Error).name === 'StorageNotFoundError') return undefined;
    throw error;
  }
  let owner: Partial<LockOwner> = {};
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object') owner = parsed as Partial<LockOwner>;
  } catch {
    // not JSON: an owner we cannot judge, reported as busy
  }
  // The id goes into a breaker's key: only a well-formed token is used as it is, anything else is hashed.
  const id = typeof owner.token === 'string' && TOKEN.test(owner.token) ? owner.token : createHash('sha256').update(bytes).digest('hex').slice(0, 32);
  return { owner, id };
}

function heldLock(store: LockStore, key: string, mine: LockOwner): HeldLock {
  return {
    owner: mine,
    // Compare, then delete. Between the two, nobody else deletes the lock: its owner (we) is alive, and a
    // live owner's lock is never broken (point 2 above); only a person removing it by hand could, and then
    // our delete removes a lock taken after that removal, which is the risk of removing a live lock by hand.
    release: async () => {
      const current = await readLock(store, key);
      if (current?.owner.token !== mine.token) return false;
      await store.delete(key);
      return true;
    },
  };
}

/** Dead only when we can see it: a pid of this host that no longer exists. */
export function ownerIsDead(owner: Partial<LockOwner>): boolean {
  return owner.hostname === os.hostname() && Number.isInteger(owner.pid) && (owner.pid as number) > 0 && !isAlive(owner.pid as number);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Another process holds the lock. */
export class BusyLockError extends HarborError {
  readonly holder: Partial<LockOwner>;
  constructor(message: string, hint: string, holder: Partial<LockOwner>) {
    super(message, { hint });
    this.holder = holder;
  }
}

function busyError(store: LockStore, key: string, holder: Partial<LockOwner>, options: LockOptions, state = 'is running'): BusyLockError {
  const who = holder.pid ? `pid ${holder.pid} on ${holder.hostname ?? 'an unknown host'}${holder.since ? `, since ${holder.since}` : ''}` : 'an owner pgharbor cannot read';
  const remote = holder.hostname !== os.hostname();
  const hint =
    options.hint?.(holder, key) ??
    (remote ? `wait for it to finish; if that process is gone (pgharbor cannot check another host), remove ${key} from ${store.location}` : 'wait for it to finish');
  return new BusyLockError(`another ${holder.operation ?? 'process'} of ${options.subject ?? key} ${state} (${who})`, hint, holder);
}
