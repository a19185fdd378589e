import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../errors.js';
import { redact } from '../log.js';
import type { Notifier } from '../notifier.js';
import type { HarborEvent } from './events.js';

export interface DeliveryPolicy {
  /** Milliseconds one attempt may take. */
  timeoutMs: number;
  /** Further attempts after a failure. */
  retries: number;
  /** Epoch milliseconds after which no attempt starts and running ones are cut short. */
  deadline?: number;
}

export interface DeliveryOutcome {
  ok: boolean;
  attempts: number;
  ms: number;
  /** The last failure, redacted. */
  error?: string;
}

/** Backoff before attempt n+1 (n ≥ 1): 1 s, 2 s, 4 s, capped at 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** (attempt - 1));
}

/**
 * Deliver one event to one target within the policy: each attempt is cut
 * at its timeout (the notifier's `send` gets an aborting signal, and is
 * abandoned if it ignores it), failures are retried with backoff unless
 * marked `retryable: false`, and nothing starts after the deadline. Never
 * throws.
 */
export async function deliver(notifier: Notifier, event: HarborEvent, policy: DeliveryPolicy): Promise<DeliveryOutcome> {
  const started = Date.now();
  let attempts = 0;
  let error = 'no attempt was made: no time left';
  for (;;) {
    const left = (policy.deadline ?? Infinity) - Date.now();
    if (left <= 0) break;
    attempts++;
    try {
      await attempt(notifier, event, Math.min(policy.timeoutMs, left));
      return { ok: true, attempts, ms: Date.now() - started };
    } catch (failure) {
      error = redact(errorMessage(failure));
      if ((failure as { retryable?: boolean }).retryable === false || attempts > policy.retries) break;
      const pause = backoffMs(attempts);
      if (Date.now() + pause >= (policy.deadline ?? Infinity)) break;
      await sleep(pause);
    }
  }
  return { ok: false, attempts, ms: Date.now() - started, error };
}

async function attempt(notifier: Notifier, event: HarborEvent, timeoutMs: number): Promise<void> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`timed out after ${(timeoutMs / 1000).toFixed(1)} s`);
      abort.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    // A notifier that ignores the signal is abandoned, not awaited.
    await Promise.race([notifier.send(event, abort.signal), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
