import type { ServerHandle } from '../server-handle.js';

/** One line of `pgharbor check`: "wal_level: OK" or "wal_level: FAILED (…) HINT: …". */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail?: string;
  hint?: string;
}

/** Handed to every `check` tap: the server under check and a place to report. */
export interface CheckContext {
  server: ServerHandle;
  report(result: CheckResult): void;
  /** Run a check, turning a thrown error into a FAILED line with its message. */
  run(name: string, check: () => Promise<{ ok: boolean; detail?: string; hint?: string }>): Promise<void>;
}
