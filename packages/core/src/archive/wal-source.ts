import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import type { RepositoryCodec } from '../codec/repository-codec.js';
import type { Encoder } from '../codec/stream-codec.js';
import type { PutOptions, StagedFile, StorageDriver } from '../storage/storage-driver.js';

/** Bytes per read: two compression frames, few thread-pool round trips. */
const CHUNK = 2 * 1024 * 1024;
/** What `onHead` gets: the segment's first page (its long header is 40 bytes). */
const HEAD = 8192;

/**
 * Read a WAL file once for archive-push, through two reused buffers: while
 * the thread pool reads the next chunk, the main thread hashes this one and
 * hands it to `consume` (the repositories' encoders, compressing on the
 * thread pool while the main thread hashes), which must be done
 * with it when its promise resolves. Reading a 16 MB segment into one fresh
 * buffer costs more in page faults than the hashing. `onHead` gets the
 * first page (the page header) before anything is hashed, and the hashing
 * waits for it: the repository checks it runs are short, and with the main
 * thread free they finish in a few thread-pool round trips.
 */
export async function hashWalFile(file: string, consume: (chunk: Buffer) => Promise<void>, onHead?: (head: Buffer) => Promise<void> | void): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    const hash = createHash('sha256');
    const readInto = (buffer: Buffer, offset: number) => {
      const read = handle.read(buffer, 0, buffer.length, offset).then(({ bytesRead }) => buffer.subarray(0, bytesRead));
      read.catch(() => {}); // in flight while other work is awaited; its failure surfaces where it is awaited
      return read;
    };
    let offset = 0;
    let next = readInto(buffers[0], 0);
    // The page header comes in a read of its own, beside the first chunk's: the checks (and the
    // copy they start) need not wait for 2 MiB.
    if (onHead) await onHead(await readInto(Buffer.allocUnsafe(HEAD), 0));
    for (let index = 0; ; index++) {
      const chunk = await next;
      if (chunk.length === 0) break;
      offset += chunk.length;
      next = readInto(buffers[(index + 1) % 2], offset); // runs while this chunk is hashed and encoded
      const consumed = consume(chunk);
      await new Promise(setImmediate); // the encoders hand their frames to the thread pool first...
      hash.update(chunk); // ...and compress them while the main thread hashes
      await consumed;
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

/**
 * What one repository stores for the file being read: the file as it is,
 * or the output of its encoder (compression, encryption) fed chunk by
 * chunk. A file stored as it is goes through the driver's `stageFile` when
 * it has one (the copy and its fsync run while the file is hashed; `stage`
 * starts it), else `putFile`, else `put`. A failing encoder (a wrong
 * encryption key) fails this repository only, when it stores.
 */
export class RepositoryBody {
  private readonly parts: Buffer[] = [];
  private readonly encoder?: Promise<Encoder | undefined>;
  /** The cipher alone keeps what it is given: without compression, it gets copies of the reused buffers. */
  private readonly copyChunks: boolean = false;
  private failure?: { error: unknown };
  private staged?: StagedFile;
  private discarded = false;

  /** `place`: the WAL file's place (walPlace()), where encrypted bytes are bound. */
  constructor(codec: RepositoryCodec | undefined, place: Buffer) {
    if (codec && !codec.isIdentity) {
      this.copyChunks = codec.compression === 'none';
      this.encoder = codec.encoder((bytes) => void this.parts.push(bytes), place);
      this.encoder.catch((error: unknown) => (this.failure ??= { error }));
    }
  }

  /**
   * Start copying `file` into the directory `prefix` of `storage` now, when
   * it is stored as it is and the driver can stage; `store` then names it.
   */
  stage(storage: StorageDriver, prefix: string, file: string): void {
    if (this.encoder || this.staged || this.discarded || !storage.stageFile) return;
    this.staged = storage.stageFile(prefix, file);
  }

  async push(chunk: Buffer): Promise<void> {
    if (!this.encoder || this.failure) return;
    try {
      const encoder = (await this.encoder)!;
      await encoder.push(this.copyChunks ? Buffer.from(chunk) : chunk);
      if (!this.copyChunks) await encoder.settle();
    } catch (error) {
      this.failure ??= { error };
    }
  }

  /** Store under `key` once the whole file went through `push`. */
  async store(storage: StorageDriver, key: string, file: string, options: PutOptions): Promise<void> {
    if (this.staged) {
      await this.staged.commit(key, options);
      return;
    }
    if (!this.encoder) {
      if (storage.putFile) await storage.putFile(key, file, options);
      else await storage.put(key, await readFile(file), options);
      return;
    }
    const encoder = await this.encoder;
    if (this.failure) throw this.failure.error;
    await encoder!.end();
    await storage.put(key, this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts), options);
  }

  /** Drop a staged copy that was not stored (already archived, refused, failed); no staging after this. */
  async discard(): Promise<void> {
    this.discarded = true;
    await this.staged?.discard();
  }
}
