import type { FileHandle } from 'node:fs/promises';

/** Bytes of one file allowed queued or in flight to the disk at once: bounds memory per restore job. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024;
/** Chunks per writev(2) call (Linux's IOV_MAX is 1024). */
const MAX_IOV = 512;

/**
 * Writes to one file that run while the caller hashes and decodes the
 * next chunk: a restore is read → hash → write per chunk, and awaiting
 * each write before hashing the next one left both CPUs half idle.
 *
 * One write(v) at a time per file, taking every chunk queued meanwhile:
 * ext4 serialises buffered writes to one inode on its lock, so several
 * writes in flight to one file only had libuv's threads spinning on that
 * lock (measured: 6-8% of a restore's CPU), a CPU the hashing needed.
 * A failed write is reported by the next write() or by drain().
 */
export class OverlappedWrites {
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private running: Promise<void> | undefined;
  private runningBytes = 0;
  private failure: unknown;
  private position = 0;

  /** `written` is told of each chunk once its write has ended (or will never run): the caller may reuse it. */
  constructor(
    private readonly handle: FileHandle,
    private readonly written: (chunk: Buffer) => void = () => {},
  ) {}

  /** Queue `chunk` at the end of what was queued so far; waits only while too much is queued. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) this.written(chunk);
    this.check();
    if (chunk.length === 0) return this.written(chunk);
    this.queued.push(chunk);
    this.queuedBytes += chunk.length;
    this.start();
    while (this.running && this.queuedBytes + this.runningBytes > MAX_IN_FLIGHT) await this.running;
    this.check();
  }

  /** Wait for every queued write; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    this.check();
  }

  /** Wait for every queued write, ignoring failures (before closing the handle after an error). */
  async settle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Start a writev of what is queued, unless one runs; the next starts when it ends. */
  private start(): void {
    if (this.running || this.queued.length === 0) return;
    const batch = this.queued.length <= MAX_IOV ? this.queued : this.queued.slice(0, MAX_IOV);
    this.queued = this.queued.length <= MAX_IOV ? [] : this.queued.slice(MAX_IOV);
    const bytes = batch.reduce((sum, b) => sum + b.length, 0);
    this.queuedBytes -= bytes;
    this.runningBytes = bytes;
    const position = this.position;
    this.position += bytes;
    this.running = writevAt(this.handle, batch, position)
      .catch((error: unknown) => {
        this.failure ??= error;
        for (const chunk of this.queued) this.written(chunk); // nothing more is written after a failure
        this.queued = [];
        this.queuedBytes = 0;
      })
      .finally(() => {
        for (const chunk of batch) this.written(chunk);
        this.running = undefined;
        this.runningBytes = 0;
        if (this.failure === undefined) this.start();
      });
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

async function writevAt(handle: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let left = chunks;
  while (left.length) {
    let { bytesWritten } = await handle.writev(left, position);
    position += bytesWritten;
    // A short write (rare: a signal, a full disk on the way to ENOSPC) continues where it stopped.
    let i = 0;
    while (i < left.length && bytesWritten >= left[i].length) bytesWritten -= left[i++].length;
    left = left.slice(i);
    if (left.length && bytesWritten > 0) left[0] = left[0].subarray(bytesWritten);
  }
}
