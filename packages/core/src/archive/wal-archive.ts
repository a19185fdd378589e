import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { StorageDriver } from '../storage/storage-driver.js';
import { walFileKind } from './wal-file-name.js';

/**
 * Where WAL lives in a repository, per server:
 *
 *   <server>/wal/<first 16 hex of the name>/<name>-<sha256>   segments and .backup files
 *   <server>/wal/history/<name>-<sha256>                      timeline history files
 *   <server>/wal/<first 16 hex>/<name>                        .partial segments (replaced as they grow)
 *
 * The checksum in the name lets archive-push tell "same file again" (fine)
 * from "different content under the same name" (refused) with one listing,
 * and archive-get verify what it serves without a second object.
 */
export function walDirectory(server: string, name: string): string {
  return walFileKind(name) === 'history' ? `${server}/wal/history/` : `${server}/wal/${name.slice(0, 16)}/`;
}

export function walKey(server: string, name: string, sha256?: string): string {
  return `${walDirectory(server, name)}${name}${sha256 ? `-${sha256}` : ''}`;
}

export interface ArchivedWal {
  key: string;
  name: string;
  sha256?: string;
  size: number;
}

/** The stored copies of `name` (normally zero or one). */
export async function findArchivedWal(storage: StorageDriver, server: string, name: string): Promise<ArchivedWal[]> {
  const found: ArchivedWal[] = [];
  const prefix = walKey(server, name);
  for await (const object of storage.list(prefix)) {
    const rest = object.key.slice(prefix.length);
    if (rest === '') found.push({ key: object.key, name, size: object.size });
    else if (/^-[0-9a-f]{64}$/.test(rest)) found.push({ key: object.key, name, sha256: rest.slice(1), size: object.size });
  }
  return found;
}

/** Every archived WAL file of a server (for listings, checks and expiry). */
export async function* listArchivedWal(storage: StorageDriver, server: string): AsyncGenerator<ArchivedWal> {
  const prefix = `${server}/wal/`;
  for await (const object of storage.list(prefix)) {
    const base = object.key.slice(object.key.lastIndexOf('/') + 1);
    const match = /^(.*?)(?:-([0-9a-f]{64}))?$/.exec(base)!;
    if (!walFileKind(match[1])) continue;
    yield { key: object.key, name: match[1], sha256: match[2], size: object.size };
  }
}

export function sha256Hex(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

export type PushOutcome = 'stored' | 'already-archived';

export class WalConflictError extends Error {
  constructor(
    readonly walName: string,
    readonly location: string,
  ) {
    super(`${walName} is already archived in ${location} with different content`);
    this.name = 'WalConflictError';
  }
}

/**
 * Store one WAL file in one repository. The same content twice succeeds;
 * different content under the same name is refused and overwrites nothing.
 * `.partial` files are replaced, since a receiver rewrites them as they grow.
 */
export async function pushWal(storage: StorageDriver, server: string, name: string, content: Buffer): Promise<PushOutcome> {
  if (walFileKind(name) === 'partial') {
    await storage.put(walKey(server, name), content);
    return 'stored';
  }
  const sha256 = sha256Hex(content);
  const existing = await findArchivedWal(storage, server, name);
  if (existing.some((w) => w.sha256 === sha256)) return 'already-archived';
  if (existing.length > 0) throw new WalConflictError(name, storage.location);
  try {
    await storage.put(walKey(server, name, sha256), content, { ifNotExists: true });
  } catch (error) {
    if ((error as Error).name === 'StorageConflictError') return 'already-archived'; // a concurrent push of the same bytes
    throw error;
  }
  // Two pushes of different content can race past the check above: the loser removes its copy.
  const after = await findArchivedWal(storage, server, name);
  if (after.length > 1 && after.some((w) => w.sha256 && w.sha256 < sha256)) {
    await storage.delete(walKey(server, name, sha256));
    throw new WalConflictError(name, storage.location);
  }
  return 'stored';
}

/** Open a stored WAL file for reading, preferring a complete copy over a .partial one. */
export async function openArchivedWal(storage: StorageDriver, server: string, name: string): Promise<{ stream: Readable; wal: ArchivedWal } | undefined> {
  const [wal] = (await findArchivedWal(storage, server, name)).filter((w) => w.sha256 || walFileKind(name) === 'partial');
  if (!wal) return undefined;
  return { stream: await storage.get(wal.key), wal };
}

/** Whether any WAL of the server is archived (then a restore recovers through restore_command). */
export async function hasArchivedWal(storage: StorageDriver, server: string): Promise<boolean> {
  for await (const object of storage.list(`${server}/wal/`)) {
    if (object) return true;
  }
  return false;
}
