import type { JsonSchemaObject } from './config/json-schema.js';
import type { SecretRef } from './config/config-types.js';
import type { Logger } from './log.js';
import type { HarborEvent } from './notify/events.js';

/**
 * A notification target: delivers one event somewhere. The core calls
 * `send` with a deadline (the signal aborts when the attempt's time is up),
 * retries failures with backoff, spools what could not be delivered, and
 * never lets a failure here change the outcome of a backup or archive-push.
 */
export interface Notifier {
  /**
   * Deliver one event; resolve when the receiver has it. Reject to report a
   * failure (it is retried, unless the error has `retryable: false`, e.g.
   * an HTTP 400 that will never succeed). Stop when `signal` aborts.
   */
  send(event: HarborEvent, signal: AbortSignal): Promise<void>;
  /** For `pgharbor check`: can this target deliver (executable present, SMTP answering)? Must not deliver anything. */
  check?(signal: AbortSignal): Promise<{ ok: boolean; detail?: string; hint?: string }>;
}

/** What `create` gets besides its options. */
export interface NotifierContext {
  logger: Logger;
  /** Directory of the config file: resolve relative paths against it. */
  configDir: string;
  /** Resolve a `{from_env}` / `{from_file}` secret; the value is registered for redaction. */
  secret(ref: SecretRef, option: string): string;
  /**
   * Environment for a child process: pgharbor's own, minus every variable
   * the config names as a secret source (`from_env`), so a script never
   * inherits the webhook key or a database password by accident.
   */
  childEnv(): Record<string, string | undefined>;
}

/** What a notifier plugin registers under its config `type`. */
export interface NotifierFactory {
  /**
   * JSON schema of the target's own options (beside `type`, `name`, `on`,
   * `servers`, `timeout` and `retries`, which every target has).
   */
  schema: JsonSchemaObject;
  create(options: Record<string, unknown>, context: NotifierContext): Notifier;
}

/** A delivery failure that retrying cannot fix (bad request, rejected recipient). */
export class PermanentDeliveryError extends Error {
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = 'PermanentDeliveryError';
  }
}
