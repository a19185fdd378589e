import type { JsonSchema } from './json-schema.js';

/**
 * Barman's hook scripts, per server (or in `defaults`):
 * `{pre,post}_{backup,archive,recovery,delete}_script` and the
 * `…_retry_script` variants. A script is an executable path, or a list
 * [path, arg, …]; it never goes through a shell.
 */
export const HOOK_OPERATIONS = ['backup', 'archive', 'recovery', 'delete'] as const;
export type HookOperation = (typeof HOOK_OPERATIONS)[number];
export type HookPhase = 'pre' | 'post';

/** A script: "/path/to/script" or ["/path/to/script", "arg", …]. */
export type ScriptCommand = string | string[];

export function hookScriptKey(phase: HookPhase, operation: HookOperation, retry: boolean): string {
  return `${phase}_${operation}_${retry ? 'retry_' : ''}script`;
}

export const scriptCommandSchema: JsonSchema = {
  description: 'an executable path, or a list [path, arg, …] (never run through a shell)',
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  ],
};

export const hookScriptProperties: Record<string, JsonSchema> = {
  ...Object.fromEntries(
    HOOK_OPERATIONS.flatMap((operation) =>
      (['pre', 'post'] as const).flatMap((phase) => [false, true].map((retry) => [hookScriptKey(phase, operation, retry), scriptCommandSchema])),
    ),
  ),
  retry_script_sleep: {
    type: 'number',
    minimum: 0,
    description: 'seconds between attempts of a retry script (default 3, as Barman; a 20× longer nap after every 5 failures)',
  },
  retry_script_max_attempts: {
    type: 'integer',
    minimum: 0,
    description: 'give up a retry script after this many attempts (default 0: never, as Barman)',
  },
};
