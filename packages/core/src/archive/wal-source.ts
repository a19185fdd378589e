import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { RepositoryCodec } from '../codec/repository-codec.js';
import type { Encoder } from '../codec/stream-codec.js';

/** Bytes per read: few thread-pool round trips, yet small enough that reading overlaps hashing and compressing. */
const CHUNK = 2 * 1024 * 1024;

export interface WalSource {
  content: Buffer;
  sha256: string;
}

/**
 * Read a WAL file once for archive-push: while the thread pool reads the
 * next chunk, the main thread hashes this one and hands it to `consume`
 * (the repositories' encoders, whose compression also runs on the thread
 * pool). On a 16 MB segment read, sha256 and compression then overlap
 * instead of adding up. `onHead` gets the first chunk (the page header)
 * before the rest is read, so the repository checks can start meanwhile.
 */
export async function readWalSource(file: string, consume: (chunk: Buffer) => Promise<void>, onHead?: (head: Buffer) => void): Promise<WalSource> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const content = Buffer.allocUnsafe(size);
    const hash = createHash('sha256');
    const readAt = async (offset: number): Promise<number> => {
      const { bytesRead } = await handle.read(content, offset, Math.min(CHUNK, size - offset), offset);
      return bytesRead;
    };
    let offset = 0;
    let next = size > 0 ? readAt(0) : undefined;
    while (next) {
      const bytesRead = await next;
      const chunk = content.subarray(offset, offset + bytesRead);
      offset += bytesRead;
      // The next read runs while this chunk is hashed and encoded.
      next = bytesRead > 0 && offset < size ? readAt(offset) : undefined;
      if (chunk.length === 0) break; // shorter than fstat said (truncated meanwhile)
      if (offset === bytesRead) onHead?.(chunk);
      hash.update(chunk);
      await consume(chunk);
    }
    return { content: offset === size ? content : content.subarray(0, offset), sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}

/**
 * What one repository stores for the file being read: the bytes as they
 * are, or the output of its encoder (compression, encryption) fed chunk by
 * chunk. A failing encoder (a wrong encryption key) fails this repository
 * only, when its body is asked for.
 */
export class RepositoryBody {
  private readonly parts: Buffer[] = [];
  private readonly encoder?: Promise<Encoder | undefined>;
  private failure?: { error: unknown };

  constructor(codec: RepositoryCodec | undefined) {
    if (codec && !codec.isIdentity) {
      this.encoder = codec.encoder((bytes) => void this.parts.push(bytes));
      this.encoder.catch((error: unknown) => (this.failure ??= { error }));
    }
  }

  async push(chunk: Buffer): Promise<void> {
    if (!this.encoder || this.failure) return;
    try {
      await (await this.encoder)!.push(chunk);
    } catch (error) {
      this.failure ??= { error };
    }
  }

  /** The bytes to store once the whole file went through `push`. */
  async body(content: Buffer): Promise<Buffer> {
    if (!this.encoder) return content;
    const encoder = await this.encoder;
    if (this.failure) throw this.failure.error;
    await encoder!.end();
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
  }
}
