import type pg from 'pg';
import { loadExeca, pgMajor, queryServerInfo, type CheckContext } from '@pgharbor/core';
import { parseToolMajor } from './pg-basebackup-args.js';

/** The checks `pgharbor check` runs for servers backed up with pg_basebackup. */
export async function basebackupChecks(context: CheckContext): Promise<void> {
  const { server } = context;
  if (server.config.method !== 'basebackup') return;

  let serverVersion: number | undefined;
  await context.run('PostgreSQL streaming', async () => {
    // A physical replication connection, as pg_basebackup opens it.
    let client: pg.Client | undefined;
    try {
      server.toolConnection(); // what pg_basebackup will get: refuses a secret that could only travel on its command line
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

  await context.run('max_wal_senders', async () => {
    const client = await server.connect();
    try {
      serverVersion = (await queryServerInfo(client)).versionNum;
      const { rows } = await client.query(
        `SELECT current_setting('max_wal_senders')::int AS max, (SELECT count(*)::int FROM pg_stat_replication) AS used`,
      );
      const free = rows[0].max - rows[0].used;
      return free >= 1
        ? { ok: true, detail: `${free} of ${rows[0].max} free` }
        : { ok: false, detail: `all ${rows[0].max} WAL senders are in use`, hint: 'raise max_wal_senders (restart needed)' };
    } finally {
      await client.end().catch(() => {});
    }
  });

  const tool = server.pgTool('pg_basebackup', serverVersion);
  let toolMajor: number | undefined;
  await context.run('pg_basebackup', async () => {
    const execa = await loadExeca();
    const result = await execa(tool, ['--version'], { reject: false });
    if (result.exitCode !== 0) {
      return { ok: false, detail: `${tool} not found or not runnable`, hint: 'install the PostgreSQL client package or set pg_bin_dir' };
    }
    toolMajor = parseToolMajor(String(result.stdout));
    return { ok: true, detail: String(result.stdout).trim() };
  });
  if (toolMajor !== undefined && serverVersion !== undefined) {
    const ok = toolMajor >= pgMajor(serverVersion);
    context.report({
      name: 'pg_basebackup compatible',
      ok,
      detail: ok ? undefined : `pg_basebackup ${toolMajor} is older than the server (${pgMajor(serverVersion)})`,
      hint: ok ? undefined : `install PostgreSQL ${pgMajor(serverVersion)} client tools or point pg_bin_dir at them`,
    });
  }
}
