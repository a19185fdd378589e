import type { ServerHandle } from '../server-handle.js';
import { errorMessage } from '../errors.js';
import { displayStatus } from '../repository/backup-status.js';
import { describePolicy } from './retention-policy.js';
import { policyFor } from './expire.js';

export interface ServerStatus {
  server: string;
  description?: string;
  active: boolean;
  error?: string;
  pgVersion?: string;
  clusterState?: 'in production' | 'in recovery';
  dataSize?: number;
  currentWal?: string;
  lastArchivedWal?: string | null;
  lastArchivedTime?: string | null;
  failedArchives?: number;
  repositories: {
    name: string;
    location: string;
    retention: string;
    backups: number;
    failedBackups: number;
    /** Backups whose deletion was interrupted (finished by the next delete, expire or cron). */
    deletingBackups: number;
    firstBackup?: string;
    lastBackup?: string;
    minimumRedundancySatisfied: boolean;
  }[];
  minimumRedundancy: number;
}

/** `pgharbor status`: the summary a DBA reads first (Barman's `status`). */
export async function serverStatus(server: ServerHandle): Promise<ServerStatus> {
  const minimum = (server.config.minimum_redundancy as number | undefined) ?? 0;
  const status: ServerStatus = { server: server.name, description: server.config.description, active: true, repositories: [], minimumRedundancy: minimum };
  try {
    const client = await server.connect();
    try {
      const { rows } = await client.query(`
        SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS recovery,
               (SELECT sum(pg_database_size(oid))::bigint FROM pg_database) AS size,
               CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS wal,
               a.last_archived_wal, a.last_archived_time, a.failed_count
          FROM pg_stat_archiver a`);
      const r = rows[0];
      Object.assign(status, {
        pgVersion: r.version,
        clusterState: r.recovery ? 'in recovery' : 'in production',
        dataSize: Number(r.size),
        currentWal: r.wal ?? undefined,
        lastArchivedWal: r.last_archived_wal,
        lastArchivedTime: r.last_archived_time ? new Date(r.last_archived_time).toISOString() : null,
        failedArchives: Number(r.failed_count),
      });
    } finally {
      await client.end().catch(() => {});
    }
  } catch (error) {
    status.active = false;
    status.error = errorMessage(error);
  }
  for (const repository of await server.repositories()) {
    const manifests = await repository.listManifests();
    const done = manifests.filter((m) => displayStatus(m) === 'DONE');
    status.repositories.push({
      name: repository.name,
      location: repository.location,
      retention: describePolicy(policyFor(server, repository)),
      backups: done.length,
      failedBackups: manifests.filter((m) => displayStatus(m) === 'FAILED').length,
      deletingBackups: manifests.filter((m) => displayStatus(m) === 'DELETING').length,
      firstBackup: done[0]?.id,
      lastBackup: done.at(-1)?.id,
      minimumRedundancySatisfied: done.length >= minimum,
    });
  }
  return status;
}
