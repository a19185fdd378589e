import { formatBytes } from './format.js';

export interface Progress {
  update(done: number, total?: number): void;
  finish(): void;
}

/**
 * A one-line progress display on a terminal (stderr), redrawn at most five
 * times a second. Off when stderr is not a TTY, so cron logs stay clean.
 */
export function createProgress(label: string, enabled = Boolean(process.stderr.isTTY)): Progress {
  if (!enabled) return { update() {}, finish() {} };
  const started = Date.now();
  let last = 0;
  let drawn = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      const rate = done / Math.max(0.001, (now - started) / 1000);
      const pct = total ? ` (${Math.min(100, (100 * done) / total).toFixed(0)}%)` : '';
      const of = total ? ` / ${formatBytes(total)}` : '';
      process.stderr.write(`\r\x1b[2K${label}: ${formatBytes(done)}${of}${pct}, ${formatBytes(rate)}/s`);
      drawn = true;
    },
    finish() {
      if (drawn) process.stderr.write('\r\x1b[2K');
    },
  };
}
