/**
 * Which paths a backup may hold: the rule shared by the tar reader at
 * backup time and by every reader of a manifest (restore, delta restore,
 * verify's copy, remote restore's staging). A repository and a server's
 * stream are untrusted input (DESIGN.md, "Trust boundaries"): a path is
 * joined to a restore target only after it passed here, so that nothing is
 * ever written outside the data directory and the tablespace locations.
 */

/** PostgreSQL's MAXPGPATH: no path inside a data directory is longer. */
export const MAX_STORED_PATH_BYTES = 1024;
/** NAME_MAX of Linux filesystems. */
const MAX_NAME_BYTES = 255;

/**
 * Where PostgreSQL itself keeps a link in a data directory. `pg_tblspc/<oid>`
 * is recreated by restore pointing at the tablespace's mapped location;
 * `pg_wal` (a link when initdb --waldir was used) is restored as a plain
 * directory, as pgBackRest does by default: a restored copy must never write
 * into the WAL directory of the cluster it was taken from.
 */
const TABLESPACE_LINK = /^pg_tblspc\/([^/]+)$/;
const TABLESPACE_CONTENT = /^pg_tblspc\/([^/]+)\/./;

/** A tablespace oid as PostgreSQL names its pg_tblspc entry: decimal, no leading zero, an Oid (32 bits, not 0). */
export function isTablespaceOidName(name: string): boolean {
  return /^[1-9]\d{0,9}$/.test(name) && Number(name) <= 0xffffffff;
}

/** Whether `path` is `pg_tblspc/<oid>`, the link restore makes itself for a tablespace. */
export function isTablespaceLinkPath(path: string): boolean {
  const match = TABLESPACE_LINK.exec(path);
  return match !== null && isTablespaceOidName(match[1]);
}

/**
 * Why `path` cannot be a path inside a data directory, or undefined when it
 * can: relative, "/"-separated, normalised (no empty, "." or ".." part, no
 * trailing slash), no NUL, control character or backslash, within
 * PostgreSQL's length limits, and not a name pgharbor uses itself in a
 * restored directory.
 */
export function storedPathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string') return 'the path is not a string';
  if (path === '') return 'the path is empty';
  if (Buffer.byteLength(path) > MAX_STORED_PATH_BYTES) return `the path is longer than ${MAX_STORED_PATH_BYTES} bytes`;
  // Control characters (NUL first of all) end or bend names in C and in terminals; a backslash is a separator to Windows tools.
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'the path contains a control character (NUL, newline…)';
  if (path.includes('\\')) return 'the path contains a backslash';
  if (path.startsWith('/')) return 'the path is absolute';
  for (const part of path.split('/')) {
    if (part === '') return 'the path has an empty part ("//" or a trailing "/")';
    if (part === '.' || part === '..') return `the path has a "${part}" part`;
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) return `a part of the path is longer than ${MAX_NAME_BYTES} bytes`;
    // restore's own names: the WAL copied for a remote recovery, pg_control set aside by a delta restore, temporary files.
    if (part.includes('.pgharbor-')) return 'the path uses a name pgharbor reserves for its own files (".pgharbor-")';
  }
  if (/^pgharbor_wal(\/|$)/.test(path)) return 'the path uses a name pgharbor reserves for its own files (pgharbor_wal)';
  return undefined;
}

export type StoredEntryType = 'file' | 'directory' | 'symlink';

/**
 * Why an entry of this type at this path cannot be in a backup of a data
 * directory, or undefined. `tablespaces`: the oids the backup lists, or
 * 'any' at ingest (the final manifest is checked against the list again).
 * Links only where PostgreSQL has them; under pg_tblspc only
 * `<oid>` and its contents, for a listed tablespace.
 */
export function storedEntryProblem(path: unknown, type: unknown, tablespaces: ReadonlySet<number> | 'any'): string | undefined {
  const pathProblem = storedPathProblem(path);
  if (pathProblem) return pathProblem;
  const p = path as string;
  if (type !== 'file' && type !== 'directory' && type !== 'symlink') return `its type ${JSON.stringify(type)} is not file, directory or symlink`;
  const listed = (oid: string) => isTablespaceOidName(oid) && (tablespaces === 'any' || tablespaces.has(Number(oid)));
  if (p === 'pg_tblspc') return type === 'directory' ? undefined : 'pg_tblspc must be a directory';
  const link = TABLESPACE_LINK.exec(p);
  if (link) {
    if (!listed(link[1])) return `pg_tblspc/${link[1]} is not a tablespace of this backup`;
    return type === 'file' ? 'a tablespace entry in pg_tblspc must be a link or a directory' : undefined;
  }
  const content = TABLESPACE_CONTENT.exec(p);
  if (content && !listed(content[1])) return `pg_tblspc/${content[1]} is not a tablespace of this backup`;
  if (type === 'symlink' && p !== 'pg_wal') return 'a link outside pg_tblspc/<oid> and pg_wal (PostgreSQL has none elsewhere)';
  return undefined;
}
