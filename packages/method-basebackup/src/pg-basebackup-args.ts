/**
 * The pg_basebackup command line for a backup. Tar format with the WAL
 * fetched into the same tar (-X fetch) makes the backup self-contained and
 * lets a single-tablespace cluster stream to stdout (-D -): pg_basebackup
 * cannot stream to stdout with -X stream or several tablespaces.
 */
export interface BasebackupArgsInput {
  conninfo: string;
  /** "-" for stdout, or a staging directory. */
  target: string;
  label: string;
  fastCheckpoint: boolean;
  maxRate?: string;
}

export function pgBasebackupArgs(input: BasebackupArgsInput): string[] {
  const args = [
    '--dbname', input.conninfo,
    '--pgdata', input.target,
    '--format=tar',
    '--wal-method=fetch',
    `--checkpoint=${input.fastCheckpoint ? 'fast' : 'spread'}`,
    '--label', input.label,
    '--verbose',
    '--no-password', // never prompt: the password comes from PGPASSWORD or .pgpass
  ];
  if (input.target !== '-') args.push('--no-sync'); // the staging copy is read once and removed
  if (input.maxRate) args.push('--max-rate', input.maxRate);
  return args;
}

/** "pg_basebackup (PostgreSQL) 15.18 (Debian …)" → 15 */
export function parseToolMajor(versionOutput: string): number | undefined {
  const match = /\(PostgreSQL\) (\d+)(?:\.(\d+))?/.exec(versionOutput);
  return match ? Number(match[1]) : undefined;
}

/** The stop LSN pg_basebackup prints with --verbose: "write-ahead log end point: 0/2000100". */
export function parseEndLsn(stderr: string): string | undefined {
  return /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(stderr)?.[1];
}
