import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Chunked AES-256-GCM for one stored object (one file of a backup, one
 * WAL file, one manifest). Format (docs/encryption.md):
 *
 *   header (32 bytes): "PGHE" | version 2 | cipher 1 (aes-256-gcm) | log2(chunk size) | 0
 *                      | key id (8 bytes) | salt (16 random bytes)
 *   chunks: ciphertext of chunk i (chunk size bytes; the final one 0..chunk size) | GCM tag (16)
 *
 *   object key = HKDF-SHA256(data key, salt, "pgharbor object v2", 32)
 *   nonce(i)   = 00 00 00 | final (00 or 01) | i as 64-bit big-endian
 *   AAD        = the 32 header bytes | the object's place (objectPlace())
 *
 * Every chunk is authenticated; the chunk index in the nonce detects
 * reordering, the final flag detects truncation (the last chunk must carry
 * it) and extension (no chunk may follow it). A fresh random salt gives
 * every object its own key, so nonces never repeat under one key. The
 * place in the AAD (server, backup id and file path, or WAL name) binds the
 * object to where it belongs: an object of this repository moved to
 * another file, backup or WAL name fails authentication (version 1 had no
 * place; such objects still open where the reader allows it).
 */
export const MAGIC = Buffer.from('PGHE', 'latin1');
export const HEADER_SIZE = 32;
export const TAG_SIZE = 16;
const VERSION = 2;
const LEGACY_VERSION = 1;
const CIPHER_AES_256_GCM = 1;
export const DEFAULT_CHUNK_LOG2 = 18; // 256 KiB: GCM runs at >1 GB/s here; 64 KiB chunks halve that

/** Identifies a data key without revealing it: HMAC-SHA256(key, "pgharbor key id")[0..8]. */
export function keyIdOf(dataKey: Buffer): Buffer {
  return createHmac('sha256', dataKey).update('pgharbor key id').digest().subarray(0, 8);
}

function objectKey(dataKey: Buffer, salt: Buffer, version: number): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, salt, `pgharbor object v${version}`, 32));
}

/**
 * Where an object belongs, as authenticated data: its kind and the names
 * that place it, joined by NUL ("file\0pga\0<backup id>\0base/5/16396",
 * "wal\0pga\0000000010000000000000012", "manifest\0pga\0<backup id>").
 * None of those names can hold a NUL (paths, WAL names, ids are checked).
 */
export function objectPlace(kind: 'file' | 'wal' | 'manifest' | 'identity', ...names: string[]): Buffer {
  for (const name of names) if (name.includes('\0')) throw new DecryptionError(`a ${kind} name holds a NUL byte`);
  return Buffer.from([kind, ...names].join('\0'), 'utf8');
}

/**
 * HMAC-SHA256 of small records kept in the clear (identity.json), with a
 * key derived from the data key for this use only: the record's fields
 * and place go in `place`.
 */
export function recordMac(dataKey: Buffer, place: Buffer): string {
  const macKey = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'pgharbor record mac v2', 32));
  return createHmac('sha256', macKey).update(place).digest('hex');
}

/** The data key and the place of one object: what sealing and opening it needs. */
export interface ObjectSeal {
  key: Buffer;
  place: Buffer;
  /**
   * Accept objects of format version 1, written before objects were bound
   * to their place (backup files and WAL of earlier pgharbor versions).
   * Never for manifests, which were never encrypted before version 2.
   */
  legacy?: boolean;
  /** Told the object's format version once its header is read, before any byte is released. */
  onVersion?: (version: number) => void;
}

function nonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n[3] = final ? 1 : 0;
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptionError';
  }
}

/** Encrypts one object as its bytes stream through. */
export class Sealer {
  private readonly header: Buffer;
  private readonly key: Buffer;
  private readonly chunkSize: number;
  private readonly pending = new PendingBytes();
  private index = 0;
  private started = false;

  private readonly aad: Buffer;

  constructor(seal: Pick<ObjectSeal, 'key' | 'place'>, chunkLog2 = DEFAULT_CHUNK_LOG2) {
    const salt = randomBytes(16);
    this.chunkSize = 2 ** chunkLog2;
    this.header = Buffer.concat([MAGIC, Buffer.from([VERSION, CIPHER_AES_256_GCM, chunkLog2, 0]), keyIdOf(seal.key), salt]);
    this.aad = Buffer.concat([this.header, seal.place]);
    this.key = objectKey(seal.key, salt, VERSION);
  }

  /** Returns the encrypted bytes ready to store (possibly none). */
  push(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (!this.started) {
      this.started = true;
      out.push(this.header);
    }
    if (data.length === 0) return out;
    this.pending.push(data);
    // Strictly more than one chunk: the last full chunk may turn out to be the final one.
    while (this.pending.length > this.chunkSize) out.push(...this.seal(this.pending.take(this.chunkSize), false));
    return out;
  }

  end(): Buffer[] {
    const out = this.started ? [] : [this.header];
    this.started = true;
    out.push(...this.seal(this.pending.take(this.pending.length), true));
    return out;
  }

  private seal(plain: Buffer, final: boolean): Buffer[] {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.index++, final), { authTagLength: TAG_SIZE });
    cipher.setAAD(this.aad);
    const body = cipher.update(plain);
    const tail = cipher.final();
    return tail.length ? [body, tail, cipher.getAuthTag()] : [body, cipher.getAuthTag()];
  }

}

/** Size of an encrypted object holding `plainSize` bytes. */
export function sealedSize(plainSize: number, chunkLog2 = DEFAULT_CHUNK_LOG2): number {
  const chunks = Math.max(1, Math.ceil(plainSize / 2 ** chunkLog2));
  return HEADER_SIZE + plainSize + chunks * TAG_SIZE;
}

export interface SealedHeader {
  version: number;
  chunkLog2: number;
  keyId: Buffer;
  salt: Buffer;
  raw: Buffer;
}

export function parseHeader(raw: Buffer): SealedHeader {
  if (raw.length < HEADER_SIZE || !raw.subarray(0, 4).equals(MAGIC)) throw new DecryptionError('not an encrypted pgharbor object (bad header)');
  const version = raw[4];
  if (version !== VERSION && version !== LEGACY_VERSION) throw new DecryptionError(`encrypted object format version ${version} is not supported by this pgharbor`);
  if (raw[5] !== CIPHER_AES_256_GCM) throw new DecryptionError(`unknown cipher ${raw[5]} in the encrypted object header`);
  const chunkLog2 = raw[6];
  if (chunkLog2 < 10 || chunkLog2 > 24) throw new DecryptionError(`implausible chunk size 2^${chunkLog2} in the encrypted object header`);
  return { version, chunkLog2, keyId: raw.subarray(8, 16), salt: raw.subarray(16, 32), raw: raw.subarray(0, HEADER_SIZE) };
}

/** Decrypts one object as its bytes stream through; never releases unauthenticated bytes. */
export class Unsealer {
  private header?: SealedHeader;
  private key?: Buffer;
  private aad?: Buffer;
  private chunkSize = 0;
  private readonly pending = new PendingBytes();
  private index = 0;
  private readonly keyId: Buffer;

  constructor(private readonly seal: ObjectSeal) {
    this.keyId = keyIdOf(seal.key);
  }

  push(data: Buffer): Buffer[] {
    if (data.length) {
      this.pending.push(data);
    }
    const out: Buffer[] = [];
    if (!this.header) {
      if (this.pending.length < HEADER_SIZE) return out;
      this.start(this.pending.take(HEADER_SIZE));
    }
    // A chunk followed by more bytes is not the final one.
    while (this.pending.length > this.chunkSize + TAG_SIZE) out.push(this.open(this.pending.take(this.chunkSize + TAG_SIZE), false));
    return out;
  }

  end(): Buffer[] {
    if (!this.header) throw new DecryptionError(`encrypted data is truncated (${this.pending.length} bytes, shorter than its header)`);
    if (this.pending.length < TAG_SIZE) throw new DecryptionError(`encrypted data is truncated after chunk ${this.index - 1}`);
    return [this.open(this.pending.take(this.pending.length), true)];
  }

  private start(raw: Buffer): void {
    const header = parseHeader(Buffer.from(raw));
    if (!header.keyId.equals(this.keyId)) {
      throw new DecryptionError(`encrypted with another key (key id ${header.keyId.toString('hex')}, this repository's key is ${this.keyId.toString('hex')})`);
    }
    if (header.version === LEGACY_VERSION && !this.seal.legacy) {
      throw new DecryptionError('an object of format version 1 (not bound to its place) where only version 2 is accepted: it was not written here by pgharbor');
    }
    this.header = header;
    this.chunkSize = 2 ** header.chunkLog2;
    this.key = objectKey(this.seal.key, header.salt, header.version);
    this.aad = header.version === LEGACY_VERSION ? header.raw : Buffer.concat([header.raw, this.seal.place]);
    this.seal.onVersion?.(header.version);
  }

  private open(sealed: Buffer, final: boolean): Buffer {
    const index = this.index++;
    // authTagLength: GCM would otherwise accept a shorter tag than the 16 bytes written.
    const decipher = createDecipheriv('aes-256-gcm', this.key!, nonce(index, final), { authTagLength: TAG_SIZE });
    decipher.setAAD(this.aad!);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const body = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      const tail = decipher.final();
      return tail.length ? Buffer.concat([body, tail]) : body;
    } catch {
      const elsewhere = this.header!.version === LEGACY_VERSION ? '' : ', or the object belongs to another place (file, backup or WAL name)';
      throw new DecryptionError(
        final
          ? `chunk ${index} (the last) failed authentication: the data was modified, truncated or extended${elsewhere}`
          : `chunk ${index} failed authentication: the data was modified or its chunks reordered${elsewhere}`,
      );
    }
  }

}

/** Decrypt a stream: never yields bytes whose chunk is not authenticated. */
export async function* unsealStream(source: AsyncIterable<Buffer>, seal: ObjectSeal): AsyncGenerator<Buffer> {
  const unsealer = new Unsealer(seal);
  for await (const chunk of source) yield* unsealer.push(chunk);
  yield* unsealer.end();
}

/** Encrypt a small object held in memory (a manifest). */
export function sealBuffer(seal: Pick<ObjectSeal, 'key' | 'place'>, plain: Buffer): Buffer {
  const sealer = new Sealer(seal);
  return Buffer.concat([...sealer.push(plain), ...sealer.end()]);
}

/** Decrypt a small object held in memory (a manifest). */
export function unsealBuffer(seal: ObjectSeal, sealed: Buffer): Buffer {
  const unsealer = new Unsealer(seal);
  return Buffer.concat([...unsealer.push(sealed), ...unsealer.end()]);
}

/** Bytes received but not yet sealed or opened: whole chunks are cut from the front. */
class PendingBytes {
  private parts: Buffer[] = [];
  length = 0;

  push(data: Buffer): void {
    this.parts.push(data);
    this.length += data.length;
  }

  take(size: number): Buffer {
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length);
    const taken = all.subarray(0, size);
    const rest = all.subarray(size);
    this.parts = rest.length ? [rest] : [];
    this.length = rest.length;
    return taken;
  }
}
