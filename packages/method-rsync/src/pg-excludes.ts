/**
 * What a file-level copy of a running cluster leaves out, after
 * PostgreSQL's "Backing Up the Data Directory" and pg_basebackup's own
 * exclusion lists (basebackup.c): recreated at start-up, rebuilt from WAL,
 * or harmful in a restored copy. Rules are rsync filter patterns, anchored
 * at the top of the copied directory.
 */
export const DATA_DIRECTORY_EXCLUDES: readonly string[] = [
  // Written by the running server; a restored copy must not have them.
  '/postmaster.pid',
  '/postmaster.opts',
  // Stored from pg_backup_stop's answer instead.
  '/backup_label',
  '/tablespace_map',
  '/backup_manifest',
  // Half-written temp files of ALTER SYSTEM and the logging collector.
  '/postgresql.auto.conf.tmp',
  '/current_logfiles.tmp',
  // Relation cache init files: rebuilt at start-up.
  'pg_internal.init',
  // Temporary files and directories of running queries.
  'pgsql_tmp*',
  // Contents recreated empty (the directories themselves are kept).
  '/pg_wal/*',
  '/pg_replslot/*',
  '/pg_dynshmem/*',
  '/pg_notify/*',
  '/pg_serial/*',
  '/pg_snapshots/*',
  '/pg_stat_tmp/*',
  '/pg_subtrans/*',
  // Tablespaces are copied from their own locations (the links are rebuilt from the catalog).
  '/pg_tblspc/*',
];

export const TABLESPACE_EXCLUDES: readonly string[] = ['pgsql_tmp*'];

export function excludeArgs(patterns: readonly string[]): string[] {
  return patterns.flatMap((pattern) => ['--exclude', pattern]);
}
