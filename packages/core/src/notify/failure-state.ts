import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Whether something that runs again and again (archive-push for every WAL
 * segment, the WAL receiver under `cron`, `check` under a monitoring
 * system) is currently failing. PostgreSQL
 * retries a failed archive_command every few seconds, so notifying every
 * failure would page someone twenty times a minute: the first failure
 * notifies, then at most one reminder per REPEAT_MS while it keeps
 * failing, and the first success after failures notifies the recovery.
 */
export interface FailureState {
  since: string;
  failures: number;
  /** When the last notification for this failure went out. */
  notified: string;
  /** What is failing (e.g. the names of the failed checks): a different failure notifies at once. */
  what?: string;
}

/** A reminder while the failure lasts. */
export const REPEAT_MS = 60 * 60_000;

/** A failure happened: the new state, and whether to notify. Pure. */
export function onFailure(state: FailureState | undefined, now: Date, what?: string, repeatMs = REPEAT_MS): { state: FailureState; notify: boolean } {
  const stamp = now.toISOString();
  if (!state) return { state: { since: stamp, failures: 1, notified: stamp, ...(what ? { what } : {}) }, notify: true };
  const notify = what !== state.what || now.getTime() - Date.parse(state.notified) >= repeatMs;
  return { state: { ...state, failures: state.failures + 1, notified: notify ? stamp : state.notified, ...(what ? { what } : {}) }, notify };
}

/**
 * The state on disk: `<state_dir>/<server>/<what>-failing.json`, present
 * only while failing, so the success path (every archived segment) costs
 * one `stat`.
 */
export class FailureStateFile {
  readonly file: string;

  constructor(stateDir: string, server: string, what: string) {
    this.file = path.join(stateDir, server, `${what}-failing.json`);
  }

  read(): FailureState | undefined {
    if (!existsSync(this.file)) return undefined;
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as FailureState;
    } catch {
      return undefined;
    }
  }

  write(state: FailureState): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(state) + '\n', { mode: 0o600 });
    renameSync(temporary, this.file);
  }

  /**
   * A success happened: end the failure and return it, if there was one.
   * Renaming first makes this atomic: of two processes succeeding at once,
   * one reports the recovery.
   */
  takeFailure(): FailureState | undefined {
    if (!existsSync(this.file)) return undefined;
    const taken = `${this.file}.${process.pid}.recovered`;
    try {
      renameSync(this.file, taken);
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(readFileSync(taken, 'utf8')) as FailureState;
    } catch {
      return undefined;
    } finally {
      unlinkSync(taken);
    }
  }
}
