import { readFileSync } from 'node:fs';
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
