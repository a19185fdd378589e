import type { execFileSync as ExecFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ConfigError, errorMessage } from '../errors.js';
import { addSecret } from '../log.js';
import type { SecretRef } from './config-types.js';

/**
 * Resolve a secret reference to its value and register the value for
 * redaction, so it can never leak through a log line or an error message.
 * `what` names the setting for errors ("servers.pga.password").
 */
export function resolveSecret(ref: SecretRef, what: string, configDir: string): string {
  let value: string;
  if ('from_env' in ref) {
    const found = process.env[ref.from_env];
    if (found === undefined) {
      throw new ConfigError(`${what}: environment variable ${ref.from_env} is not set`, `export ${ref.from_env} before running pgharbor`);
    }
    value = found;
  } else if ('from_command' in ref) {
    // argv, no shell: the secret is the program's standard output (one trailing newline dropped).
    const [program, ...args] = ref.from_command;
    try {
      value = execFileSync()(program, args, { cwd: configDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, maxBuffer: 1024 * 1024 }).replace(/\r?\n$/, '');
    } catch (error) {
      const status = (error as { status?: number }).status;
      throw new ConfigError(
        `${what}: the command ${program} ${typeof status !== 'number' ? `could not run (${errorMessage(error).split('\n')[0]})` : `exited with status ${status}`}`,
        'run the command by hand to see what it needs (its output is the secret, so it is never shown here)',
      );
    }
  } else {
    const file = path.resolve(configDir, ref.from_file);
    try {
      value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new ConfigError(`${what}: cannot read secret file ${file}: ${errorMessage(error)}`, 'create the file (mode 0600) or fix the path');
    }
  }
  addSecret(value);
  return value;
}

/** Loaded on use: node:child_process (with net, dgram…) costs archive-push, which runs once per WAL segment, several ms. */
function execFileSync(): typeof ExecFileSync {
  return (createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')).execFileSync;
}
