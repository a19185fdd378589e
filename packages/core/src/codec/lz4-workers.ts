import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compressLz4Frame, lz4FrameBound } from './lz4-frame.js';
import type { Lz4Job, Lz4JobDone, Lz4Slot } from './lz4-worker.js';

/** The largest block sent to a worker: the encoder's frames (stream-codec.ts FRAME_SIZE). Larger ones compress here. */
const SLOT_BYTES = 1024 * 1024;
/**
 * Bytes compressed through `compressHere` before the workers start. A
 * worker takes ~20 ms of CPU to start, more than compressing a 16 MB WAL
 * segment through lz4-native.ts (5-7 ms): archive-push never starts one,
 * a backup starts them after its first two segments' worth.
 */
const START_AFTER = 32 * 1024 * 1024;

/** A block's shared input and the frame's shared output, known to every worker by index. */
interface Slot {
  index: number;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  /** Handed out by newFrame: its input is the caller's buffer, never taken from the free list. */
  owned: boolean;
}

interface Pending {
  slot: Slot;
  length: number;
  resolve: (frame: Buffer) => void;
  reject: (error: Error) => void;
}

/**
 * LZ4 compression on worker threads, so that a backup's main thread only
 * reads, hashes and writes while its frames compress beside it, in memory
 * V8 sees (see lz4-frame.ts). Blocks travel through shared memory: a block
 * collected in a buffer from `newFrame` is compressed where it lies, any
 * other is copied into a free slot first; the frame is copied out once.
 * The workers hold the process open only while they have work. When a
 * worker cannot start or dies, compression goes on on the calling thread:
 * slower, never wrong. Before the workers start, `compressHere` compresses
 * (lz4-native.ts: fastest for a WAL segment or two).
 */
export class Lz4WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly slots: Slot[] = [];
  private readonly freeSlots: Slot[] = [];
  private readonly slotByInput = new WeakMap<ArrayBufferLike, Slot>();
  private readonly pending = new Map<number, Pending>();
  private readonly load = new Map<Worker, number>();
  private nextId = 1;
  private compressedHere = 0;
  private broken = false;

  constructor(
    private readonly workerFile: string | undefined = defaultWorkerFile(),
    /** Workers to start (0: compress on the calling thread, see defaultWorkerCount). */
    private readonly size = defaultWorkerCount(),
    private readonly startAfter = START_AFTER,
    /** Until the workers start (or without a worker file: archive-push runs from a bundle). */
    private readonly compressHere: (block: Buffer) => Promise<Buffer> = async (block) => compressLz4Frame(block),
  ) {}

  /** A buffer of `size` bytes for collecting a block in, compressed without a copy (when it fits a slot). */
  newFrame(size: number): Buffer {
    if (size > SLOT_BYTES || this.size === 0) return Buffer.allocUnsafeSlow(size);
    const slot = this.newSlot(true);
    return Buffer.from(slot.input, 0, size);
  }

  /**
   * One LZ4 frame holding `block`. `long`: a block of a long stream (a
   * backup's files): with no worker to start, there is no start-up to
   * spare it, and lz4-native's first 32 MiB would pin ~14 MB of native
   * outputs until a collection (peak RSS of a scale-100 backup 153 MB
   * against 139): it compresses here, in WebAssembly, from the first block.
   */
  compress(block: Buffer, long = false): Promise<Buffer> {
    if (long && this.size === 0) return Promise.resolve(compressLz4Frame(block));
    if (!this.workerFile || this.compressedHere < this.startAfter) {
      this.compressedHere += block.length;
      return this.compressHere(block);
    }
    if (this.size === 0) return Promise.resolve(compressLz4Frame(block));
    if (!this.broken) this.start();
    if (this.broken || block.length > SLOT_BYTES) return Promise.resolve(compressLz4Frame(block));
    let slot = block.byteOffset === 0 ? this.slotByInput.get(block.buffer) : undefined;
    if (!slot) {
      slot = this.freeSlots.pop() ?? this.newSlot(false);
      new Uint8Array(slot.input).set(block);
    }
    const worker = this.leastLoaded();
    const id = this.nextId++;
    const job: Lz4Job = { id, slot: slot.index, length: block.length };
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { slot: slot!, length: block.length, resolve, reject });
      this.track(worker, +1);
      worker.postMessage(job);
    });
  }

  /** Stop the workers (tests; the process needs no call: idle workers do not keep it alive). */
  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  /** Start the workers once; a worker that cannot even be created (no threads left) breaks the pool like one that dies. */
  private start(): void {
    if (this.workers.length) return;
    for (let i = 0; i < this.size; i++) {
      let worker: Worker;
      try {
        worker = new Worker(this.workerFile!);
      } catch {
        this.broken = true;
        for (const other of this.workers.splice(0)) void other.terminate();
        return;
      }
      worker.unref();
      this.load.set(worker, 0);
      worker.on('message', (done: Lz4JobDone) => this.finish(worker, done));
      worker.on('error', (error) => this.fail(worker, error));
      worker.on('exit', (code) => this.fail(worker, new Error(`lz4 worker exited (code ${code})`)));
      for (const slot of this.slots) worker.postMessage(slotMessage(slot));
      this.workers.push(worker);
    }
  }

  /** Sent to each worker once: structured-cloning a SharedArrayBuffer costs ~0.3 ms, far more than a job. */
  private newSlot(owned: boolean): Slot {
    const slot: Slot = { index: this.slots.length, input: new SharedArrayBuffer(SLOT_BYTES), output: new SharedArrayBuffer(lz4FrameBound(SLOT_BYTES)), owned };
    this.slots.push(slot);
    this.slotByInput.set(slot.input, slot);
    for (const worker of this.workers) worker.postMessage(slotMessage(slot));
    return slot;
  }

  private leastLoaded(): Worker {
    return this.workers.reduce((a, b) => (this.load.get(b)! < this.load.get(a)! ? b : a));
  }

  /** Jobs per worker; a worker with work holds the process open. */
  private track(worker: Worker, delta: number): void {
    const jobs = this.load.get(worker)! + delta;
    this.load.set(worker, jobs);
    if (jobs === 1 && delta > 0) worker.ref();
    if (jobs === 0) worker.unref();
  }

  private finish(worker: Worker, done: Lz4JobDone): void {
    const job = this.pending.get(done.id);
    if (!job) return;
    this.pending.delete(done.id);
    this.track(worker, -1);
    const frame = 'error' in done ? undefined : Buffer.from(new Uint8Array(job.slot.output, 0, done.length));
    if (!job.slot.owned) this.freeSlots.push(job.slot);
    if (frame) job.resolve(frame);
    else job.reject(new Error((done as { error: string }).error));
  }

  /**
   * A worker failed: its jobs (and every other in flight: which worker had
   * which is not worth tracking) are compressed here instead, and so is
   * everything after. Each slot still holds its block: a slot is only
   * reused once its job is done.
   */
  private fail(worker: Worker, _error: Error): void {
    if (!this.workers.includes(worker)) return; // closed on purpose
    this.broken = true;
    for (const other of this.workers.splice(0)) void other.terminate();
    const jobs = [...this.pending.values()];
    this.pending.clear();
    for (const job of jobs) {
      try {
        job.resolve(compressLz4Frame(new Uint8Array(job.slot.input, 0, job.length)));
      } catch (error) {
        job.reject(error as Error);
      }
      if (!job.slot.owned) this.freeSlots.push(job.slot);
    }
  }
}

/**
 * No worker on a machine of two cores or fewer: there the backup's main
 * thread waits for the server's stream most of the time (a profile of a
 * pgbench scale-100 lz4 backup: idle 10.8 of 15.2 s), and compressing on
 * it beat one worker on every count: 1.5 GB in 5.9-6.2 s against 6.8-7.1 s,
 * 3.4-3.6 user CPU-s against 3.9-4.3 (no postMessage per block, no worker
 * start-up), peak RSS 138 MB against 162-166 (no second isolate, no shared
 * slots). From three cores on, one or two workers compress beside it.
 */
export function defaultWorkerCount(cores = availableParallelism()): number {
  return cores > 2 ? Math.min(2, cores - 1) : 0;
}

function slotMessage(slot: Slot): Lz4Slot {
  return { slot: slot.index, input: slot.input, output: slot.output };
}

/** dist/codec/lz4-worker.js beside this module; absent when this runs from a bundle or from source (tests). */
function defaultWorkerFile(): string | undefined {
  const file = fileURLToPath(new URL('./lz4-worker.js', import.meta.url));
  return existsSync(file) ? file : undefined;
}
