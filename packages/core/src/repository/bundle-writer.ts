import { PassThrough } from 'node:stream';
import type { Repository } from './repository.js';
import type { BundleInfo } from './manifest.js';
import { filePlace } from '../codec/backup-codec.js';
import { fileHasher } from '../codec/file-digest.js';

/** Where one file's bytes ended up. */
export interface StoredFile {
  size: number;
  /** `"<algorithm>:<hex>"` of the original bytes (codec/file-digest.ts). */
  digest: string;
  bundle?: number;
  offset?: number;
  storedSize: number;
  /** How the bytes are stored (absent: as they are). */
  compression?: string;
  encryption?: string;
}

interface OpenBundle {
  id: number;
  stream: PassThrough;
  stored: Promise<unknown>;
  size: number;
}

/** A place in the open bundle where a caller writes pieces it encodes itself (BundleWriter.writeSpan). */
export interface BundleSpan {
  /** Where the next byte goes: opens the bundle when none is open. */
  position(): { bundle: number; offset: number };
  write(bytes: Buffer): Promise<void>;
}

/** Closed bundles that may be committing at once (see BundleWriter.closing). */
const MAX_CLOSING = 3;

/**
 * Backups store file contents concatenated into bundles of about
 * `targetSize` bytes, each one storage object written with a single
 * streaming put. One object per ~128 MiB instead of one per file keeps a
 * backup to a handful of atomic writes (one fsync each on posix, one
 * multipart upload each on S3) while the manifest's offsets still allow
 * reading any single file with a ranged get.
 */
export class BundleWriter {
  readonly bundles: BundleInfo[] = [];
  private current?: OpenBundle;
  /**
   * Closed bundles still being made durable (fsync + rename on posix, the
   * last upload part on S3). Up to MAX_CLOSING may be in flight, so that the
   * tar stream keeps flowing while bundles are committed: with two, the
   * stream stalled on a slow fsync (a 1.5 GB backup ran ~8% faster with
   * three). Not more: on S3 each may still hold its last parts in memory.
   */
  private readonly closing: { bundle: OpenBundle; done: Promise<unknown> }[] = [];
  private failure?: Error;
  private nextId = 1;

  constructor(
    private readonly repository: Repository,
    private readonly backupId: string,
    private readonly targetSize = 128 * 1024 * 1024,
  ) {}

  /**
   * Stream one file into the current bundle, hashing it on the way. A file
   * of half the bundle size or more (`sizeHint`, from the tar header) gets a
   * bundle of its own, so that a restore's workers can share the rest.
   * `path` is the file's path in the manifest: encrypted bytes are bound to it.
   */
  async writeFile(source: AsyncIterable<Buffer> | Buffer[], sizeHint: number, path: string): Promise<StoredFile> {
    const big = sizeHint >= this.targetSize / 2;
    if (big) await this.closeCurrent();
    const stored = this.repository.codec.isIdentity ? await this.writePlain(source) : await this.writeEncoded(source, path);
    if (big || (this.current && this.current.size >= this.targetSize)) await this.closeCurrent();
    return stored;
  }

  /**
   * Write one file as pieces the caller encodes itself (a relation file's
   * super blocks and block map, blocks/store-relation-file.ts), all in one
   * bundle, at positions the caller learns before writing them (encrypted
   * pieces are bound to their place). Same bundle rules as writeFile.
   */
  async writeSpan<T>(sizeHint: number, fill: (span: BundleSpan) => Promise<T>): Promise<T> {
    const big = sizeHint >= this.targetSize / 2;
    if (big) await this.closeCurrent();
    let bundle: OpenBundle | undefined;
    const result = await fill({
      position: () => {
        bundle ??= this.open();
        return { bundle: bundle.id, offset: bundle.size };
      },
      write: async (bytes) => {
        if (bytes.length === 0) return;
        bundle ??= this.open();
        bundle.size += bytes.length;
        await this.write(bundle, bytes);
      },
    });
    if (big || (this.current && this.current.size >= this.targetSize)) await this.closeCurrent();
    return result;
  }

  private async writePlain(source: AsyncIterable<Buffer> | Buffer[]): Promise<StoredFile> {
    await this.repository.codec.prepareWrite(); // refuses plaintext in an encrypted repository (checked once)
    const hash = fileHasher();
    let bundle: OpenBundle | undefined;
    let offset = 0;
    let size = 0;
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      if (!bundle) {
        bundle = this.open();
        offset = bundle.size;
      }
      hash.update(chunk);
      size += chunk.length;
      bundle.size += chunk.length;
      await this.write(bundle, chunk);
    }
    const stored: StoredFile = { size, digest: hash.digest(), storedSize: size };
    if (bundle) {
      stored.bundle = bundle.id;
      stored.offset = offset;
    }
    return stored;
  }

  /**
   * Compressed and/or encrypted: the file becomes one self-contained run
   * of frames (docs/encryption.md) at `offset`, `storedSize` bytes long, so
   * a ranged read of the bundle still yields exactly one file.
   */
  private async writeEncoded(source: AsyncIterable<Buffer> | Buffer[], path: string): Promise<StoredFile> {
    const codec = this.repository.codec;
    const hash = fileHasher();
    let bundle: OpenBundle | undefined;
    let offset = 0;
    let size = 0;
    let storedSize = 0;
    const emit = async (bytes: Buffer) => {
      if (bytes.length === 0) return;
      if (!bundle) {
        bundle = this.open();
        offset = bundle.size;
      }
      bundle.size += bytes.length;
      storedSize += bytes.length;
      await this.write(bundle, bytes);
    };
    let encoder: Awaited<ReturnType<typeof codec.encoder>>;
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      encoder ??= await codec.encoder(emit, filePlace(this.repository.server, this.backupId, { path }).place, true);
      hash.update(chunk);
      size += chunk.length;
      await encoder!.push(chunk);
    }
    await encoder?.end();
    // Empty files store nothing, so there is nothing to decode either.
    const stored: StoredFile = { size, digest: hash.digest(), storedSize, compression: size ? codec.compression : 'none', encryption: size ? codec.encryption : 'none' };
    if (bundle) {
      stored.bundle = (bundle as OpenBundle).id;
      stored.offset = offset;
    }
    return stored;
  }

  /** Close the last bundle and wait until every bundle is durably stored. */
  async finish(): Promise<BundleInfo[]> {
    await this.closeCurrent();
    while (this.closing.length) await this.settleOldest();
    return this.bundles.sort((a, b) => a.id - b.id);
  }

  /** Stop writing: the open bundle's put fails and leaves nothing behind. */
  abort(reason: Error): void {
    this.failure ??= reason;
    this.current?.stream.destroy(reason);
    this.current = undefined;
  }

  /** Wait for bundles still being committed (after abort: so that nothing writes behind our back). */
  async drain(): Promise<void> {
    await Promise.allSettled(this.closing.map((c) => c.done));
  }

  private open(): OpenBundle {
    if (this.failure) throw this.failure;
    if (this.current) return this.current;
    const id = this.nextId++;
    const stream = new PassThrough({ highWaterMark: 1024 * 1024 });
    // abort() destroys the stream with the backup's error; the store may not
    // have attached its own listener yet, and an 'error' nobody hears kills
    // the process before the manifest says FAILED. The error reaches us
    // through `failure` and the put's rejection instead.
    stream.on('error', () => {});
    const stored = this.repository.storage.put(this.repository.bundleKey(this.backupId, id), stream).catch((error: Error) => {
      this.failure ??= error;
      throw error;
    });
    // Surfaced through write()/finish(); keep Node from reporting it as unhandled meanwhile.
    stored.catch(() => {});
    this.current = { id, stream, stored, size: 0 };
    return this.current;
  }

  private async write(bundle: OpenBundle, chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (bundle.stream.write(chunk)) return;
    // Backpressure: wait for the store to catch up, or for it to fail.
    await Promise.race([new Promise((resolve) => bundle.stream.once('drain', resolve)), bundle.stored]);
    if (this.failure) throw this.failure;
  }

  private async closeCurrent(): Promise<void> {
    const bundle = this.current;
    if (!bundle) return;
    this.current = undefined;
    bundle.stream.end();
    this.closing.push({ bundle, done: bundle.stored });
    if (this.closing.length >= MAX_CLOSING) await this.settleOldest();
  }

  private async settleOldest(): Promise<void> {
    const { bundle, done } = this.closing.shift()!;
    await done;
    this.bundles.push({ id: bundle.id, storedSize: bundle.size });
  }
}
