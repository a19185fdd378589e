import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Chunked AES-256-GCM for one stored object (one file of a backup, one
 * WAL file). Format (docs/encryption.md):
 *
 *   header (32 bytes): "PGHE" | version 1 | cipher 1 (aes-256-gcm) | log2(chunk size) | 0
 *                      | key id (8 bytes) | salt (16 random bytes)
 *   chunks: ciphertext of chunk i (chunk size bytes; the final one 0..chunk size) | GCM tag (16)
 *
 *   object key = HKDF-SHA256(data key, salt, "pgharbor object v1", 32)
 *   nonce(i)   = 00 00 00 | final (00 or 01) | i as 64-bit big-endian
 *   AAD        = the 32 header bytes
 *
 * Every chunk is authenticated; the chunk index in the nonce detects
 * reordering, the final flag detects truncation (the last chunk must carry
 * it) and extension (no chunk may follow it). A fresh random salt gives
 * every object its own key, so nonces never repeat under one key.
 */
export const MAGIC = Buffer.from('PGHE', 'latin1');
export const HEADER_SIZE = 32;
export const TAG_SIZE = 16;
const VERSION = 1;
const CIPHER_AES_256_GCM = 1;
export const DEFAULT_CHUNK_LOG2 = 18; // 256 KiB: GCM runs at >1 GB/s here; 64 KiB chunks halve that

/** Identifies a data key without revealing it: HMAC-SHA256(key, "pgharbor key id")[0..8]. */
export function keyIdOf(dataKey: Buffer): Buffer {
  return createHmac('sha256', dataKey).update('pgharbor key id').digest().subarray(0, 8);
}

function objectKey(dataKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, salt, 'pgharbor object v1', 32));
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

  constructor(dataKey: Buffer, chunkLog2 = DEFAULT_CHUNK_LOG2) {
    const salt = randomBytes(16);
    this.chunkSize = 2 ** chunkLog2;
    this.header = Buffer.concat([MAGIC, Buffer.from([VERSION, CIPHER_AES_256_GCM, chunkLog2, 0]), keyIdOf(dataKey), salt]);
    this.key = objectKey(dataKey, salt);
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
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.index++, final));
    cipher.setAAD(this.header);
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
  if (version !== VERSION) throw new DecryptionError(`encrypted object format version ${version} is not supported by this pgharbor`);
  if (raw[5] !== CIPHER_AES_256_GCM) throw new DecryptionError(`unknown cipher ${raw[5]} in the encrypted object header`);
  const chunkLog2 = raw[6];
  if (chunkLog2 < 10 || chunkLog2 > 24) throw new DecryptionError(`implausible chunk size 2^${chunkLog2} in the encrypted object header`);
  return { version, chunkLog2, keyId: raw.subarray(8, 16), salt: raw.subarray(16, 32), raw: raw.subarray(0, HEADER_SIZE) };
}

/** Decrypts one object as its bytes stream through; never releases unauthenticated bytes. */
export class Unsealer {
  private header?: SealedHeader;
  private key?: Buffer;
  private chunkSize = 0;
  private readonly pending = new PendingBytes();
  private index = 0;

  constructor(
    private readonly dataKey: Buffer,
    private readonly keyId = keyIdOf(dataKey),
  ) {}

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
    this.header = header;
    this.chunkSize = 2 ** header.chunkLog2;
    this.key = objectKey(this.dataKey, header.salt);
  }

  private open(sealed: Buffer, final: boolean): Buffer {
    const index = this.index++;
    const decipher = createDecipheriv('aes-256-gcm', this.key!, nonce(index, final));
    decipher.setAAD(this.header!.raw);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const body = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      const tail = decipher.final();
      return tail.length ? Buffer.concat([body, tail]) : body;
    } catch {
      throw new DecryptionError(
        final
          ? `chunk ${index} (the last) failed authentication: the data was modified, truncated or extended`
          : `chunk ${index} failed authentication: the data was modified or its chunks reordered`,
      );
    }
  }

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
