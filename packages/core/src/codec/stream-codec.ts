import { once } from 'node:events';
import type { BlockCompressor } from './compressors.js';
import { loadCompressor } from './compressors.js';
import { Sealer, unsealStream, type ObjectSeal } from './cipher.js';
import { FrameSplitter } from './frames.js';
import type { CompressionAlgorithm } from './codec-settings.js';
import { FRAME_SIZE, countDecoded, type ExpectedSize } from './decode-bounds.js';

export { FRAME_SIZE };
/** Frames compressing or decompressing at once per stream (on libuv's thread pool). */
const IN_FLIGHT = 3;

/**
 * 1 MiB frame buffers kept for reuse, per compressor (lz4's live in memory
 * shared with its workers). A backup cuts ~1,500 frames from 1.5 GB; a
 * fresh buffer per frame was garbage the size of the whole backup, counted
 * by V8 as external memory, and that external memory (with the
 * compressors' outputs) set off a full mark-compact every few dozen
 * frames. A frame goes back as soon as its compression is done.
 */
const framePools = new WeakMap<BlockCompressor, Buffer[]>();
const POOL_MAX = 8;

function acquireFrame(compressor: BlockCompressor): Buffer {
  return framePools.get(compressor)?.pop() ?? compressor.newFrame?.(FRAME_SIZE) ?? Buffer.allocUnsafeSlow(FRAME_SIZE);
}

function releaseFrame(compressor: BlockCompressor, frame: Buffer): void {
  let pool = framePools.get(compressor);
  if (!pool) framePools.set(compressor, (pool = []));
  if (pool.length < POOL_MAX) pool.push(frame);
}

/**
 * Encodes one object (a file of a backup, a WAL file) as it streams:
 * original bytes → frames of ≤ 1 MiB, each compressed on its own (in
 * parallel, output kept in order) → chunked AES-256-GCM → `emit`.
 */
export class Encoder {
  /** The frame being filled (a pooled buffer), and how much of it is. */
  private frame?: Buffer;
  private filled = 0;
  private readonly inflight: Promise<Buffer>[] = [];
  private readonly sealer?: Sealer;

  constructor(
    private readonly compressor: BlockCompressor | undefined,
    private readonly level: number | undefined,
    /** The data key and the object's place, when encrypting. */
    seal: ObjectSeal | undefined,
    private readonly emit: (bytes: Buffer) => Promise<void> | void,
    /** A long stream (a backup's files), not a WAL segment: the compressor may choose differently (lz4-workers.ts). */
    private readonly long = false,
  ) {
    if (seal) this.sealer = new Sealer(seal);
  }

  async push(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    if (!this.compressor) return this.out(chunk);
    let at = 0;
    while (at < chunk.length) {
      if (this.filled === 0 && chunk.length - at >= FRAME_SIZE) {
        // A whole frame in the caller's buffer (a WAL segment): compressed from there, no copy.
        await this.submit(chunk.subarray(at, at + FRAME_SIZE));
        at += FRAME_SIZE;
        continue;
      }
      this.frame ??= acquireFrame(this.compressor);
      const copied = chunk.copy(this.frame, this.filled, at, Math.min(chunk.length, at + FRAME_SIZE - this.filled));
      this.filled += copied;
      at += copied;
      if (this.filled === FRAME_SIZE) await this.submitFrame();
    }
  }

  async end(): Promise<void> {
    if (this.filled > 0) await this.submitFrame();
    while (this.inflight.length) await this.out(await this.inflight.shift()!);
    if (this.sealer) for (const bytes of this.sealer.end()) await this.emit(bytes);
  }

  /**
   * Finish the frames being compressed: then the encoder holds nothing of
   * the chunks pushed so far (a partial frame is already a copy), and the
   * caller may reuse their buffers (archive-push reads a segment through
   * two). Only for an encoder that compresses: the cipher alone keeps what
   * it is given.
   */
  async settle(): Promise<void> {
    while (this.inflight.length) await this.out(await this.inflight.shift()!);
  }

  /** Hand the filled pooled frame to the compressor; the buffer returns to the pool when it is done with it. */
  private async submitFrame(): Promise<void> {
    const frame = this.frame!;
    const length = this.filled;
    this.frame = undefined;
    this.filled = 0;
    await this.submit(frame.subarray(0, length), () => releaseFrame(this.compressor!, frame));
  }

  private async submit(frame: Buffer, release?: () => void): Promise<void> {
    const compressed = this.compressor!.compress(frame, this.level, this.long);
    if (release) compressed.then(release, release);
    compressed.catch(() => {}); // awaited in order below; never an unhandled rejection meanwhile
    this.inflight.push(compressed);
    if (this.inflight.length >= IN_FLIGHT) await this.out(await this.inflight.shift()!);
  }

  private async out(bytes: Buffer): Promise<void> {
    if (!this.sealer) return this.emit(bytes);
    for (const sealed of this.sealer.push(bytes)) await this.emit(sealed);
  }
}

/** Encode a whole buffer (a WAL file): what `Encoder` would store for it. */
export async function encodeBuffer(content: Buffer, compression: CompressionAlgorithm, level: number | undefined, seal: ObjectSeal | undefined): Promise<Buffer> {
  if (compression === 'none' && !seal) return content;
  const out: Buffer[] = [];
  const encoder = new Encoder(compression === 'none' ? undefined : await loadCompressor(compression), level, seal, (bytes) => void out.push(bytes));
  await encoder.push(content);
  await encoder.end();
  return Buffer.concat(out);
}

/**
 * The original bytes of a stored object, streamed: decrypt (when
 * encrypted, at its place), then decompress, each frame to at most
 * FRAME_SIZE bytes and the whole to what is `expected` (decode-bounds.ts):
 * a forged object fails as soon as it goes past, having cost no more
 * memory than a real one.
 */
export function decodeStream(source: AsyncIterable<Buffer>, compression: string, seal: ObjectSeal | undefined, expected?: ExpectedSize): AsyncGenerator<Buffer> {
  const plain = seal ? unsealStream(source, seal) : source;
  return countDecoded(decompressStream(plain, compression), expected);
}

async function* decompressStream(plain: AsyncIterable<Buffer>, compression: string): AsyncGenerator<Buffer> {
  if (compression === 'none') {
    yield* plain;
    return;
  }
  if (compression === 'gzip') {
    yield* gunzipStream(plain);
    return;
  }
  if (compression !== 'lz4' && compression !== 'zstd') throw new Error(`unknown compression "${compression}"`);
  const compressor = await loadCompressor(compression);
  const splitter = new FrameSplitter(compression);
  if (compressor.decompressSync) {
    // Decoded here and now: queueing decoded frames ahead would only hold more memory.
    for await (const chunk of plain) for (const frame of splitter.push(chunk)) yield compressor.decompressSync(frame, FRAME_SIZE);
    splitter.end();
    return;
  }
  const queue: Promise<Buffer>[] = [];
  const enqueue = (frame: Buffer) => {
    const done = compressor.decompress(frame, FRAME_SIZE);
    done.catch(() => {});
    queue.push(done);
  };
  for await (const chunk of plain) {
    // One read can hold dozens of well-compressed frames: decode at most IN_FLIGHT at a time.
    for (const frame of splitter.push(chunk)) {
      enqueue(frame);
      while (queue.length >= IN_FLIGHT) yield await queue.shift()!;
    }
  }
  splitter.end();
  while (queue.length) yield await queue.shift()!;
}

/** gzip (one or more members) decoded as it streams, at zlib's pace: the consumer's reads set how much is inflated. */
export async function* gunzipStream(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const zlib = await import('node:zlib');
  const gunzip = zlib.createGunzip();
  const stop = new AbortController();
  let failed: unknown;
  // Feed and read at once (zlib's own backpressure); the feeder never outlives this generator.
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        if (stop.signal.aborted) return;
        if (!gunzip.write(chunk)) await once(gunzip, 'drain', { signal: stop.signal });
      }
      gunzip.end();
    } catch (error) {
      if (stop.signal.aborted) return;
      failed = error;
      gunzip.destroy(error as Error);
    }
  })();
  try {
    for await (const out of gunzip) yield out as Buffer;
    await feeding;
    if (failed) throw failed;
  } catch (error) {
    throw failed ?? error;
  } finally {
    stop.abort();
    gunzip.destroy();
    await feeding;
  }
}
