import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, errorMessage } from '../errors.js';
import { LIBPQ_KEYWORDS, type ConninfoParams } from './conninfo.js';

/**
 * The settings of a connection service (`service=NAME`), found as libpq
 * finds them: PGSERVICEFILE or ~/.pg_service.conf first, then
 * PGSYSCONFDIR/pg_service.conf (Debian's libpq: /etc/postgresql-common).
 * They fill in only what the conninfo itself does not say.
 */
export function serviceParams(name: string, env: NodeJS.ProcessEnv): ConninfoParams {
  const files = [
    env.PGSERVICEFILE ?? path.join(os.homedir(), '.pg_service.conf'),
    path.join(env.PGSYSCONFDIR ?? '/etc/postgresql-common', 'pg_service.conf'),
  ];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ConfigError(`conninfo: cannot read service file "${file}": ${errorMessage(error)}`, 'fix its permissions, or set PGSERVICEFILE');
    }
    const found = section(text, name, file);
    if (found) return found;
  }
  throw new ConfigError(`conninfo: definition of service "${name}" not found (looked in ${files.join(', ')})`, 'add a [' + name + '] section to one of them, or set PGSERVICEFILE');
}

function section(text: string, name: string, file: string): ConninfoParams | undefined {
  let current: string | undefined;
  let found: ConninfoParams | undefined;
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.*)\]$/.exec(line);
    if (header) {
      if (found) return found; // libpq stops at the end of the first matching section
      current = header[1];
      if (current === name) found = {};
      continue;
    }
    if (current !== name || !found) continue;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!LIBPQ_KEYWORDS.has(key) || key === 'service') {
      throw new ConfigError(`conninfo: syntax error in service file "${file}", line ${index + 1}: ${key ? `unknown keyword "${key}"` : 'expected keyword=value'}`, 'use libpq keywords, one keyword=value a line');
    }
    found[key] = line.slice(eq + 1).trim();
  }
  return found;
}
