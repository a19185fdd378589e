import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface MemoryProbe {
  /** Note that `bytes` more were streamed; every few MiB, collect garbage and sample. */
  observe(bytes: number): void;
  /** Peak growth of live Buffer/ArrayBuffer memory since creation or the last reset(). */
  peakGrowth(): number;
  reset(): void;
}

const SAMPLE_EVERY = 4 * 1024 * 1024;

/**
 * Measures how much Buffer memory stays *live* while an object streams
 * through a driver: garbage is collected before each sample, so a driver that
 * streams shows near-constant usage while one that buffers the whole object
 * grows with it. Returns undefined when garbage collection cannot be forced.
 */
export function memoryProbe(): MemoryProbe | undefined {
  const gc = forceableGc();
  if (!gc) return undefined;
  const live = (): number => {
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  let baseline = live();
  let peak = baseline;
  let unsampled = 0;
  return {
    observe(bytes) {
      unsampled += bytes;
      if (unsampled < SAMPLE_EVERY) return;
      unsampled = 0;
      peak = Math.max(peak, live());
    },
    peakGrowth: () => Math.max(peak, live()) - baseline,
    reset() {
      baseline = live();
      peak = baseline;
      unsampled = 0;
    },
  };
}

function forceableGc(): (() => void) | undefined {
  const global = globalThis as { gc?: () => void };
  if (typeof global.gc === 'function') return global.gc;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}
