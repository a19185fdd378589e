import { ConfigError } from '@pgharbor/core';

/**
 * The BASE_BACKUP replication command for a server's major version
 * (protocol.sgml, "Streaming Replication Protocol"). PostgreSQL 15 takes
 * a parenthesised option list; 13 and 14 only the older keyword syntax
 * (repl_gram.y of REL_14_STABLE).
 *
 * What is asked for, and why:
 * - WAL: the WAL from start to end inside the main tar (as `pg_basebackup
 *   -X fetch`): the backup is consistent by itself. The temporary slot
 *   taken before it (basebackup-method.ts) keeps the server from
 *   recycling that WAL meanwhile.
 * - no WAIT: with the WAL included, waiting for it to be archived would
 *   only tie the backup to archive_command (pg_basebackup -X fetch sends
 *   NOWAIT too).
 * - TABLESPACE_MAP: the tablespace links as a tablespace_map file in the
 *   main tar, as in pg_basebackup's tar format (restore reads it).
 * - MANIFEST 'yes': PostgreSQL's backup_manifest, kept for pg_verifybackup.
 * - no PROGRESS: it makes the server walk the data directory once more
 *   before sending anything, to estimate sizes; pgharbor's estimate comes
 *   from pg_database_size (PostgreSQL 15+ reports progress anyway).
 */
export interface BaseBackupCommandInput {
  /** server_version_num, e.g. 150018. */
  versionNum: number;
  label: string;
  fastCheckpoint: boolean;
  /** kB/s, as MAX_RATE takes it (from parseMaxRate). */
  maxRateKb?: number;
  compression?: ServerCompression;
  /** PostgreSQL 17+: an incremental backup against the manifest uploaded before (UPLOAD_MANIFEST). */
  incremental?: boolean;
}

export interface ServerCompression {
  algorithm: 'gzip' | 'lz4' | 'zstd';
  level?: number;
}

/** The file name suffix PostgreSQL gives an archive compressed so (basebackup_gzip.c, _lz4.c, _zstd.c). */
export const ARCHIVE_SUFFIX: Record<ServerCompression['algorithm'], string> = { gzip: '.gz', lz4: '.lz4', zstd: '.zst' };

export function baseBackupCommand(input: BaseBackupCommandInput): string {
  const label = quoteLiteral(checkLabel(input.label));
  if (input.versionNum >= 150000) {
    const options = [`LABEL ${label}`, `CHECKPOINT '${input.fastCheckpoint ? 'fast' : 'spread'}'`, 'WAL', 'WAIT false', "MANIFEST 'yes'", 'TABLESPACE_MAP'];
    if (input.maxRateKb !== undefined) options.push(`MAX_RATE ${input.maxRateKb}`);
    if (input.incremental) {
      if (input.versionNum < 170000) throw new ConfigError('an incremental BASE_BACKUP needs PostgreSQL 17 or later', 'take the backup without WAL summaries');
      options.push('INCREMENTAL');
    }
    if (input.compression) {
      options.push(`COMPRESSION '${input.compression.algorithm}'`);
      if (input.compression.level !== undefined) options.push(`COMPRESSION_DETAIL 'level=${input.compression.level}'`);
    }
    return `BASE_BACKUP (${options.join(', ')})`;
  }
  if (input.compression) {
    throw new ConfigError(
      `server_compression ${input.compression.algorithm} needs PostgreSQL 15 or later (the server is ${Math.floor(input.versionNum / 10000)})`,
      'remove server_compression for this server (the repository compresses anyway: compression in the repository settings)',
    );
  }
  const options = [`LABEL ${label}`];
  if (input.fastCheckpoint) options.push('FAST');
  options.push('WAL', 'NOWAIT', 'TABLESPACE_MAP', "MANIFEST 'yes'");
  if (input.maxRateKb !== undefined) options.push(`MAX_RATE ${input.maxRateKb}`);
  return `BASE_BACKUP ${options.join(' ')}`;
}

/**
 * A string literal of the replication grammar (repl_scanner.l): quotes
 * doubled, backslashes literal, no escapes; NUL cannot be sent at all.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new ConfigError('a BASE_BACKUP string may not contain a NUL character', 'remove it');
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * PostgreSQL writes the label into backup_label as a line ("LABEL: ...")
 * and truncates it to MAXPGPATH - 1 bytes: a line break would forge other
 * lines of that file, and a truncated label would not be the one asked for.
 */
export function checkLabel(label: string): string {
  if (/[\0\r\n]/.test(label)) throw new ConfigError(`backup label ${JSON.stringify(label)} contains a line break or NUL`, 'use a one-line label');
  if (Buffer.byteLength(label) > 1023) throw new ConfigError(`backup label is ${Buffer.byteLength(label)} bytes long, PostgreSQL keeps at most 1023`, 'use a shorter label');
  return label;
}

/**
 * max_rate as pg_basebackup's --max-rate took it: a number of kB/s, or
 * with suffix k (kB/s) or M (MB/s). PostgreSQL accepts 32 kB/s to 1 GB/s.
 */
export function parseMaxRate(value: string): number {
  const match = /^([0-9]+)([kM]?)$/.exec(value);
  if (!match) throw new ConfigError(`max_rate "${value}" is not a rate`, 'write kB/s as a number, or with k or M, e.g. "32M"');
  const kb = Number(match[1]) * (match[2] === 'M' ? 1024 : 1);
  if (kb < 32 || kb > 1024 * 1024) throw new ConfigError(`max_rate "${value}" is ${kb} kB/s, outside PostgreSQL's 32 kB/s to 1 GB/s`, 'choose a rate between 32k and 1024M');
  return kb;
}

/** server_compression: "none", "gzip", "lz4", "zstd", optionally ":LEVEL". */
export function parseServerCompression(value: string | undefined): ServerCompression | undefined {
  if (value === undefined || value === 'none') return undefined;
  const match = /^(gzip|lz4|zstd)(?::([0-9]{1,2}))?$/.exec(value);
  if (!match) throw new ConfigError(`server_compression "${value}" is not understood`, 'use none, gzip, lz4 or zstd, optionally with a level: zstd:3');
  const algorithm = match[1] as ServerCompression['algorithm'];
  const level = match[2] === undefined ? undefined : Number(match[2]);
  const [min, max] = { gzip: [1, 9], lz4: [1, 12], zstd: [1, 19] }[algorithm];
  if (level !== undefined && (level < min || level > max)) {
    throw new ConfigError(`server_compression level ${level} is outside ${min} to ${max} for ${algorithm}`, `choose a level from ${min} to ${max}`);
  }
  return { algorithm, level };
}
