import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { PutOptions, StorageDriver } from '../storage/storage-driver.js';
import { walFileKind } from './wal-file-name.js';
import { RepositoryCodec } from '../codec/repository-codec.js';
import { encodeBuffer } from '../codec/stream-codec.js';
import { countDecoded } from '../codec/decode-bounds.js';
import { boundWalFile, walDecodeBound } from './wal-size.js';
import { objectPlace } from '../codec/cipher.js';
import { HarborError } from '../errors.js';

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
 *
 * Compressed and encrypted objects carry suffixes after the checksum:
 * `<name>-<sha256>.zst`, `.lz4`, `.gz`, then `.enc` when encrypted
 * (`<name>-<sha256>.zst.enc`); the checksum is always of the original
 * bytes. Readers accept every variant, so a change of settings never
 * strands what was archived before.
 */
export function walDirectory(server: string, name: string): string {
  return walFileKind(name) === 'history' ? `${server}/wal/history/` : `${server}/wal/${name.slice(0, 16)}/`;
}

export function walKey(server: string, name: string, sha256?: string, suffix = ''): string {
  return `${walDirectory(server, name)}${name}${sha256 ? `-${sha256}` : ''}${suffix}`;
}

export interface ArchivedWal {
  key: string;
  name: string;
  sha256?: string;
  /** Stored size (compressed/encrypted). */
  size: number;
  /** none, gzip, lz4 or zstd (from the suffix). */
  compression?: string;
  /** none or aes-256-gcm (from the suffix). */
  encryption?: string;
}

const SUFFIX_COMPRESSION: Record<string, string> = { '.gz': 'gzip', '.lz4': 'lz4', '.zst': 'zstd' };
/** What follows the name: `-<sha256>`, a compression suffix, `.enc`: each optional. */
const STORED_SUFFIX = /(?:-([0-9a-f]{64}))?(\.gz|\.lz4|\.zst)?(\.enc)?$/;

function describeStored(key: string, name: string, size: number, match: RegExpExecArray): ArchivedWal {
  return { key, name, sha256: match[1], size, compression: match[2] ? SUFFIX_COMPRESSION[match[2]] : 'none', encryption: match[3] ? 'aes-256-gcm' : 'none' };
}

/** The stored copies of `name` (normally zero or one). */
export async function findArchivedWal(storage: StorageDriver, server: string, name: string): Promise<ArchivedWal[]> {
  const found: ArchivedWal[] = [];
  const prefix = walKey(server, name);
  const exact = new RegExp(`^${STORED_SUFFIX.source}`);
  for await (const object of storage.list(prefix)) {
    const match = exact.exec(object.key.slice(prefix.length));
    if (match) found.push(describeStored(object.key, name, object.size, match));
  }
  return found;
}

/** Every archived WAL file of a server (for listings, checks and expiry). */
export async function* listArchivedWal(storage: StorageDriver, server: string): AsyncGenerator<ArchivedWal> {
  const prefix = `${server}/wal/`;
  for await (const object of storage.list(prefix)) {
    const base = object.key.slice(object.key.lastIndexOf('/') + 1);
    const match = new RegExp(`^(.*?)${STORED_SUFFIX.source}`).exec(base)!;
    if (!walFileKind(match[1])) continue;
    yield describeStored(object.key, match[1], object.size, match.slice(1) as unknown as RegExpExecArray);
  }
}

/**
 * Where an encrypted WAL object belongs: the server and the WAL file's
 * name (".partial" included). The sha256 in the object's name is checked
 * against the decoded bytes, so name and checksum together pin the content.
 */
export function walPlace(server: string, name: string): Buffer {
  return objectPlace('wal', server, name);
}

/** Whether a stored copy may be served by this repository: in an encrypted one, only encrypted copies. */
function servable(wal: ArchivedWal, codec: RepositoryCodec | undefined): boolean {
  return !codec?.isEncrypted || wal.encryption === 'aes-256-gcm';
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

/** What archive-push prepared while reading the file (wal-source.ts): its checksum, and how to store it encoded. */
export interface PreparedWal {
  sha256: string;
  store(key: string, options: PutOptions): Promise<void>;
}

/**
 * Store one WAL file in one repository. The same content twice succeeds;
 * different content under the same name is refused and overwrites nothing.
 * `.partial` files are replaced, since a receiver rewrites them as they grow.
 */
export async function pushWal(storage: StorageDriver, server: string, name: string, content: Buffer | PreparedWal, codec?: RepositoryCodec): Promise<PushOutcome> {
  const key = await codec?.prepareWrite(); // an encrypted repository refuses plaintext; a wrong key fails here
  const suffix = codec?.walSuffix ?? '';
  const store = async (objectKey: string, options: PutOptions = {}) => {
    if (!Buffer.isBuffer(content)) return content.store(objectKey, options);
    await storage.put(objectKey, codec ? await encodeBuffer(content, codec.compression, codec.settings.level, key && { key: key.key, place: walPlace(server, name) }) : content, options);
  };
  if (walFileKind(name) === 'partial') {
    await store(walKey(server, name, undefined, suffix));
    // A change of settings leaves the previous variant: only the newest copy may stay.
    for (const other of await findArchivedWal(storage, server, name)) if (other.key !== walKey(server, name, undefined, suffix)) await storage.delete(other.key);
    return 'stored';
  }
  const sha256 = Buffer.isBuffer(content) ? sha256Hex(content) : content.sha256;
  const existing = await findArchivedWal(storage, server, name);
  // A copy in the clear in an encrypted repository is never served: it does not count as archived.
  if (existing.some((w) => w.sha256 === sha256 && servable(w, codec))) return 'already-archived';
  if (existing.length > 0) throw new WalConflictError(name, storage.location);
  try {
    await store(walKey(server, name, sha256, suffix), { ifNotExists: true });
  } catch (error) {
    if ((error as Error).name === 'StorageConflictError') return 'already-archived'; // a concurrent push of the same bytes
    throw error;
  }
  // Two pushes of different content can race past the check above: the loser removes its copy.
  const after = await findArchivedWal(storage, server, name);
  if (after.length > 1 && after.some((w) => w.sha256 && w.sha256 < sha256)) {
    await storage.delete(walKey(server, name, sha256, suffix));
    throw new WalConflictError(name, storage.location);
  }
  return 'stored';
}

/**
 * Open a stored WAL file for reading, preferring a complete copy over a
 * .partial one. The stream yields the original bytes: decompressed, and
 * decrypted with the codec's key (a stored object that is encrypted needs
 * a codec with encryption settings), and no more of them than the file may
 * have (wal-size.ts). In an encrypted repository a copy in the clear is
 * refused, and an encrypted one must open as `name`'s (its place); the
 * caller checks the bytes against the sha256 in the name.
 */
export async function openArchivedWal(
  storage: StorageDriver,
  server: string,
  name: string,
  codec?: RepositoryCodec,
): Promise<{ stream: AsyncIterable<Buffer>; wal: ArchivedWal } | undefined> {
  await codec?.assertPlainRepository(); // a config without encryption reads nothing from an encrypted repository
  const copies = (await findArchivedWal(storage, server, name)).filter((w) => w.sha256 || walFileKind(name) === 'partial');
  const [wal] = copies.filter((w) => servable(w, codec));
  if (!wal) {
    if (copies.length === 0) return undefined;
    throw new HarborError(`${name} is stored unencrypted in an encrypted repository (${copies[0].key}): refused`, {
      hint: 'pgharbor never stores WAL in the clear in an encrypted repository: someone with write access put it there; remove it and check the repository',
    });
  }
  const stored: Readable = await storage.get(wal.key);
  const bound = walDecodeBound(name); // and boundWalFile: no more than its page header's segment size
  if ((wal.compression ?? 'none') === 'none' && (wal.encryption ?? 'none') === 'none') return { stream: boundWalFile(name, countDecoded(stored, bound)), wal };
  let version = 0;
  try {
    const decoded = await (codec ?? RepositoryCodec.identity(storage, server)).decoder(stored, wal, { place: walPlace(server, name), legacy: true, onVersion: (v) => (version = v) }, bound);
    // Format 1 objects are not bound to their name: a segment's own page header must name it.
    const stream = walFileKind(name) === 'segment' ? checkedSegment(decoded, name, () => version === 1) : decoded;
    return { stream: boundWalFile(name, stream), wal };
  } catch (error) {
    stored.destroy();
    throw error;
  }
}

/**
 * WAL objects encrypted before objects were bound to their place (format
 * 1) open with the repository's key and must match the sha256 in their
 * name; a segment among them must also start with the page address its
 * name says, so that one renamed to another segment number is refused.
 * (A format 1 history or .backup file renamed with its checksum is not
 * caught: docs/encryption.md.)
 */
async function* checkedSegment(source: AsyncIterable<Buffer>, name: string, isLegacy: () => boolean): AsyncGenerator<Buffer> {
  let head: Buffer | undefined = Buffer.alloc(0);
  for await (const chunk of source) {
    if (head && isLegacy()) {
      head = Buffer.concat([head, chunk]);
      if (head.length < 40) continue;
      const segmentSize = BigInt(head.readUInt32LE(32));
      const expected = BigInt(`0x${name.slice(8, 16)}`) * 0x100000000n + BigInt(`0x${name.slice(16, 24)}`) * segmentSize;
      if (segmentSize === 0n || head.readBigUInt64LE(8) !== expected) {
        throw new HarborError(`${name}: the archived object (encrypted by an earlier pgharbor, not bound to its name) holds another segment`, {
          hint: 'someone with write access renamed WAL objects; the segment is refused',
        });
      }
      const whole = head;
      head = undefined;
      yield whole;
      continue;
    }
    head = undefined;
    yield chunk;
  }
  if (head && head.length > 0) yield head;
}

/** Whether any WAL of the server is archived (then a restore recovers through restore_command). */
export async function hasArchivedWal(storage: StorageDriver, server: string): Promise<boolean> {
  for await (const object of storage.list(`${server}/wal/`)) {
    if (object) return true;
  }
  return false;
}
