import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HarborEvent } from './events.js';

/**
 * Events not yet delivered to every target, one small JSON file each.
 * Writing one is synchronous and takes well under a millisecond, so even
 * archive-push (PostgreSQL waits for it) can afford to record an event
 * before trying to deliver it. The file's suffix says who owns it:
 *
 *   <id>.sending           the raising process is delivering it inline
 *   <id>.json              waiting for a flush (detached flusher, `cron`)
 *   <id>.flushing-<pid>    claimed by a flusher (rename is the lock)
 *
 * A `.sending` or `.flushing-*` file older than STALE_MS belongs to a
 * process that died; a flush takes it over. Delivery is at least once.
 */
export interface SpoolEntry {
  event: HarborEvent;
  /** Names of the targets that still have to receive it. */
  pending: string[];
  /** Delivery rounds so far (inline attempt, flushes). */
  rounds: number;
  lastError?: string;
}

export interface SpooledFile {
  file: string;
  entry: SpoolEntry;
}

const STALE_MS = 10 * 60_000;

export class Spool {
  constructor(readonly dir: string) {}

  /** Record an event that the caller is about to deliver inline. */
  add(entry: SpoolEntry): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, `${entry.event.time.replace(/[:.]/g, '')}-${entry.event.id}.sending`);
    writeAtomically(file, entry);
    return file;
  }

  /** Done with `file`: remove it when nothing is pending, else leave it for a flush. */
  settle(file: string, entry: SpoolEntry): void {
    if (entry.pending.length === 0) {
      unlinkSync(file);
      return;
    }
    const waiting = file.replace(/\.(sending|flushing-\d+)$/, '.json');
    writeAtomically(waiting, entry);
    if (waiting !== file) unlinkSync(file);
  }

  /** Claim every entry waiting for a flush (and those whose owner died). */
  claim(now = Date.now()): SpooledFile[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const claimed: SpooledFile[] = [];
    for (const name of names.sort()) {
      const from = path.join(this.dir, name);
      const waiting = name.endsWith('.json');
      const orphan = /\.(sending|flushing-\d+)$/.test(name) && now - mtime(from) > STALE_MS;
      if (!waiting && !orphan) continue;
      const to = from.replace(/\.(json|sending|flushing-\d+)$/, `.flushing-${process.pid}`);
      try {
        renameSync(from, to); // atomic: of two flushers, one wins
        claimed.push({ file: to, entry: JSON.parse(readFileSync(to, 'utf8')) as SpoolEntry });
      } catch {
        // taken by another flusher, or unreadable: skip
      }
    }
    return claimed;
  }

  /** Entries not yet delivered (waiting or in flight), oldest first: for `check`. */
  backlog(): { count: number; oldest?: string } {
    try {
      const names = readdirSync(this.dir).filter((n) => !n.startsWith('.')).sort();
      return { count: names.length, oldest: names[0] ? new Date(mtime(path.join(this.dir, names[0]))).toISOString() : undefined };
    } catch {
      return { count: 0 };
    }
  }
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return Date.now();
  }
}

function writeAtomically(file: string, entry: SpoolEntry): void {
  const temporary = `${path.dirname(file)}/.${path.basename(file)}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(entry) + '\n', { mode: 0o600 });
  renameSync(temporary, file);
}
