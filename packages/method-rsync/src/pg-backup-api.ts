import type pg from 'pg';
import { HarborError, pgMajor } from '@pgharbor/core';

/**
 * PostgreSQL's low-level (non-exclusive) backup API. The backup lives as
 * long as the session that started it: if we die, the server ends it.
 * PostgreSQL 15 renamed the functions; older servers get the old names.
 */
export interface BackupStop {
  lsn: string;
  labelFile: string;
  /** Empty when the cluster has no tablespaces. */
  spcmapFile: string;
}

export function backupFunctions(versionNum: number): { start: string; stop: string } {
  return pgMajor(versionNum) >= 15 ? { start: 'pg_backup_start(text, boolean)', stop: 'pg_backup_stop(boolean)' } : { start: 'pg_start_backup(text, boolean, boolean)', stop: 'pg_stop_backup(boolean, boolean)' };
}

export async function startBackup(client: pg.Client, versionNum: number, label: string, fast: boolean, server: string): Promise<void> {
  const sql = pgMajor(versionNum) >= 15 ? 'SELECT pg_backup_start($1, $2)' : 'SELECT pg_start_backup($1, $2, false)';
  try {
    await client.query(sql, [label, fast]);
  } catch (error) {
    throw privilegeError(error, server, versionNum, 'start');
  }
}

export async function stopBackup(client: pg.Client, versionNum: number, waitForArchive: boolean, server: string): Promise<BackupStop> {
  const sql =
    pgMajor(versionNum) >= 15
      ? 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_backup_stop($1)'
      : 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_stop_backup(false, $1)';
  try {
    const { rows } = await client.query(sql, [waitForArchive]);
    return { lsn: rows[0].lsn, labelFile: rows[0].labelfile, spcmapFile: rows[0].spcmapfile ?? '' };
  } catch (error) {
    throw privilegeError(error, server, versionNum, 'stop');
  }
}

function privilegeError(error: unknown, server: string, versionNum: number, step: 'start' | 'stop'): HarborError {
  const functions = backupFunctions(versionNum);
  const name = step === 'start' ? functions.start : functions.stop;
  const message = (error as Error).message;
  if ((error as { code?: string }).code === '42501') {
    return new HarborError(`server ${server}: ${name.replace(/\(.*/, '()')} refused: ${message}`, {
      hint: `as a superuser: GRANT EXECUTE ON FUNCTION ${functions.start} TO <user>; GRANT EXECUTE ON FUNCTION ${functions.stop} TO <user>; (or make the conninfo user a superuser)`,
      cause: error,
    });
  }
  return new HarborError(`server ${server}: ${name.replace(/\(.*/, '()')} failed: ${message}`, {
    hint: step === 'start' ? 'is the server a standby or in recovery, or is another backup holding this session?' : 'the backup is abandoned; take a new one',
    cause: error,
  });
}
