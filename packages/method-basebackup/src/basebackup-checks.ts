import type pg from 'pg';
import { pgMajor, queryServerInfo, type CheckContext } from '@pgharbor/core';
import { NEWEST_MAJOR, OLDEST_MAJOR } from './basebackup-method.js';
import { parseServerCompression } from './base-backup-command.js';

/**
 * The checks `pgharbor check` runs for servers backed up with BASE_BACKUP.
 * No client program is needed: pgharbor speaks the protocol itself.
 */
export async function basebackupChecks(context: CheckContext): Promise<void> {
  const { server } = context;
  if (server.config.method !== 'basebackup') return;

  await context.run('PostgreSQL streaming', async () => {
    // The physical replication connection the backup opens.
    let client: pg.Client | undefined;
    try {
      client = await server.connectStreaming();
      const result = await client.query('IDENTIFY_SYSTEM');
      return { ok: true, detail: `system ${result.rows[0].systemid}, timeline ${result.rows[0].timeline}` };
    } catch (error) {
      return {
        ok: false,
        detail: (error as Error).message,
        hint: (error as { exitCode?: number; hint?: string }).exitCode === 2
          ? (error as { hint?: string }).hint
          : 'the streaming_conninfo user needs the REPLICATION attribute and a "replication" line in pg_hba.conf',
      };
    } finally {
      await client?.end().catch(() => {});
    }
  });

  let versionNum: number | undefined;
  await context.run('max_wal_senders', async () => {
    const client = await server.connect();
    try {
      versionNum = (await queryServerInfo(client)).versionNum;
      const { rows } = await client.query(
        `SELECT current_setting('max_wal_senders')::int AS max, (SELECT count(*)::int FROM pg_stat_replication) AS used,
                current_setting('max_replication_slots')::int AS slots, (SELECT count(*)::int FROM pg_replication_slots) AS slots_used`,
      );
      const free = rows[0].max - rows[0].used;
      if (free < 1) return { ok: false, detail: `all ${rows[0].max} WAL senders are in use`, hint: 'raise max_wal_senders (restart needed)' };
      // The backup holds a temporary slot so that the WAL it needs is kept.
      if (rows[0].slots - rows[0].slots_used < 1) return { ok: false, detail: `all ${rows[0].slots} replication slots are in use`, hint: 'raise max_replication_slots (restart needed): a backup takes a temporary one' };
      return { ok: true, detail: `${free} of ${rows[0].max} free` };
    } finally {
      await client.end().catch(() => {});
    }
  });

  if (versionNum === undefined) return;
  const major = pgMajor(versionNum);
  const compression = (() => {
    try {
      return parseServerCompression(server.config.server_compression as string | undefined);
    } catch {
      return undefined; // the config check reports it
    }
  })();
  const supported = major >= OLDEST_MAJOR;
  context.report({
    name: 'BASE_BACKUP protocol',
    ok: supported && !(compression && major < 15),
    detail: !supported
      ? `PostgreSQL ${major} is older than ${OLDEST_MAJOR}`
      : compression && major < 15
        ? `server_compression ${compression.algorithm} needs PostgreSQL 15+, the server is ${major}`
        : `PostgreSQL ${major}${major > NEWEST_MAJOR ? ` (newer than ${NEWEST_MAJOR}, spoken as ${NEWEST_MAJOR})` : ''}`,
    hint: !supported ? 'upgrade the server, or use method: rsync' : compression && major < 15 ? 'remove server_compression for this server' : undefined,
  });
}
