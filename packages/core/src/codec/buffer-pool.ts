/**
 * Reusable 1 MiB output buffers for decoders, handed back by the consumer
 * once it is done with the bytes (a restore: hashed and written).
 *
 * Why: a restore of an lz4 backup allocated a fresh 1 MiB buffer per frame,
 * about a thousand per GiB restored. Each one is external memory to V8, so the
 * garbage collector ran a full mark-compact every few dozen frames
 * (8-20% of the CPU samples of a restore, by perf), and glibc handed the memory back
 * and forth with the kernel (page faults, zeroing). Reused buffers cost none
 * of that.
 *
 * Only buffers this pool allocated are taken back (tracked by their
 * ArrayBuffer; a view of one counts as the buffer): giving back anything
 * else is ignored, so a consumer that never gives back is merely as slow
 * as before. A consumer must not touch a buffer after giving it back.
 */
export const POOLED_SIZE = 1024 * 1024;
/** Free buffers kept: enough for the frames in flight of a few restore jobs. */
const KEEP = 8;

const ours = new WeakSet<ArrayBuffer>();
const free: Buffer[] = [];

/** A buffer of POOLED_SIZE bytes (contents undefined). */
export function takePooledBuffer(): Buffer {
  const buffer = free.pop();
  if (buffer) return buffer;
  const fresh = Buffer.allocUnsafeSlow(POOLED_SIZE);
  ours.add(fresh.buffer as ArrayBuffer);
  return fresh;
}

/** Hand back, exactly once, a buffer (or a view of one) from takePooledBuffer(); anything else is ignored. */
export function givePooledBuffer(view: Buffer): void {
  const backing = view.buffer as ArrayBuffer;
  if (!ours.has(backing) || free.length >= KEEP || free.some((b) => b.buffer === backing)) return;
  free.push(Buffer.from(backing, 0, POOLED_SIZE));
}
