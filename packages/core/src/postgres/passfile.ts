import { readFileSync, statSync } from 'node:fs';

/**
 * The password a libpq password file (the `passfile` keyword, .pgpass
 * format) gives for a connection, read as libpq reads it: lines
 * hostname:port:database:username:password, `*` matching anything,
 * `\:` and `\\` escaped, a Unix-socket host matching "localhost", and a
 * file that group or others can read ignored (libpq warns and skips it).
 * node-postgres reads ~/.pgpass and PGPASSFILE itself, but not this keyword.
 */
export function passwordFromPassfile(file: string, want: { host?: string; port?: number; database?: string; user?: string }): string | undefined {
  let text: string;
  try {
    if ((statSync(file).mode & 0o077) !== 0) return undefined;
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // libpq: a missing password file is no password
  }
  const host = !want.host || want.host.startsWith('/') ? 'localhost' : want.host;
  const wanted = [host, String(want.port ?? 5432), want.database ?? want.user ?? '', want.user ?? ''];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    if (wanted.every((value, i) => fields[i] === '*' || fields[i] === value)) return fields.slice(4).join(':');
  }
  return undefined;
}

function splitFields(line: string): string[] {
  const fields = [''];
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\\' && i + 1 < line.length) fields[fields.length - 1] += line[++i];
    else if (line[i] === ':') fields.push('');
    else fields[fields.length - 1] += line[i];
  }
  return fields;
}
