/**
 * Every failure a user can act on is a HarborError: a one-line message that
 * says what failed (server, backup, file) and a hint that says what to do.
 * The CLI prints `ERROR: message` and `HINT: hint` and exits with `exitCode`.
 */
export type ExitCode = 1 | 2;

export class HarborError extends Error {
  readonly hint?: string;
  /** 1: the operation failed; 2: bad usage or bad configuration. */
  readonly exitCode: ExitCode;

  constructor(message: string, options: { hint?: string; exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HarborError';
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Bad configuration or bad command-line usage: exit code 2. */
export class ConfigError extends HarborError {
  constructor(message: string, hint?: string) {
    super(message, { hint, exitCode: 2 });
    this.name = 'ConfigError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
