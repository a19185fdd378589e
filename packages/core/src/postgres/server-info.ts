import type pg from 'pg';
import type { TablespaceInfo } from '../repository/manifest.js';

/** What pgharbor needs to know about a cluster before backing it up. */
export interface ServerInfo {
  systemIdentifier: string;
  /** server_version_num, e.g. 150018. */
  versionNum: number;
  version: string;
  dataDirectory: string;
  timeline: number;
  walSegmentSize: number;
  inRecovery: boolean;
  tablespaces: TablespaceInfo[];
}

/**
 * The timeline the server writes (a primary) or replays (a standby). Not
 * pg_control_checkpoint()'s alone: after a promotion it keeps naming the
 * old timeline until the next checkpoint completes, and a receiver reset
 * then named its restart segment on the wrong timeline.
 */
export const CURRENT_TIMELINE_SQL = `CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`;

export async function queryServerInfo(client: pg.Client): Promise<ServerInfo> {
  const { rows } = await client.query(`
    SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
           current_setting('server_version_num')::int AS version_num,
           current_setting('server_version') AS version,
           current_setting('data_directory') AS data_directory,
           ${CURRENT_TIMELINE_SQL} AS timeline,
           pg_size_bytes(current_setting('wal_segment_size')) AS wal_segment_size,
           pg_is_in_recovery() AS in_recovery`);
  const row = rows[0];
  const spaces = await client.query(
    `SELECT oid::int AS oid, spcname AS name, pg_tablespace_location(oid) AS location
       FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid`,
  );
  return {
    systemIdentifier: row.system_identifier,
    versionNum: row.version_num,
    version: row.version,
    dataDirectory: row.data_directory,
    timeline: row.timeline,
    walSegmentSize: Number(row.wal_segment_size),
    inRecovery: row.in_recovery,
    tablespaces: spaces.rows as TablespaceInfo[],
  };
}
