import type { FileHandle } from 'node:fs/promises';

/** Bytes of one file allowed in flight to the disk at once: bounds memory per restore job. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024;

/**
 * Positional writes to one file that run while the caller hashes and
 * decodes the next chunk: a restore is read → hash → write per chunk, and
 * awaiting each write before hashing the next one left both CPUs half idle.
 * A failed write is reported by the next write() or by drain().
 */
export class OverlappedWrites {
  private readonly inflight: { done: Promise<void>; bytes: number }[] = [];
  private inflightBytes = 0;
  private failure: unknown;
  private position = 0;

  /** `written` is told of each chunk once its write has ended (failed or not): the caller may reuse it. */
  constructor(
    private readonly handle: FileHandle,
    private readonly written: (chunk: Buffer) => void = () => {},
  ) {}

  /** Queue `chunk` at the end of what was queued so far; waits only while too much is in flight. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) this.written(chunk);
    this.check();
    const done = writeAt(this.handle, chunk, this.position)
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.written(chunk));
    this.position += chunk.length;
    this.inflight.push({ done, bytes: chunk.length });
    this.inflightBytes += chunk.length;
    while (this.inflightBytes > MAX_IN_FLIGHT) await this.settleOldest();
    this.check();
  }

  /** Wait for every queued write; throws the first failure. */
  async drain(): Promise<void> {
    while (this.inflight.length) await this.settleOldest();
    this.check();
  }

  /** Wait for every queued write, ignoring failures (before closing the handle after an error). */
  async settle(): Promise<void> {
    while (this.inflight.length) await this.settleOldest();
  }

  private async settleOldest(): Promise<void> {
    const oldest = this.inflight.shift()!;
    await oldest.done;
    this.inflightBytes -= oldest.bytes;
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

async function writeAt(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, position + written);
    written += bytesWritten;
  }
}
