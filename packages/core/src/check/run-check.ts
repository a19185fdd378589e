import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import { errorMessage, HarborError } from '../errors.js';
import type { CheckContext, CheckResult } from './check-context.js';
import { queryServerInfo, type ServerInfo } from '../postgres/server-info.js';
import { displayStatus } from '../repository/backup-status.js';
import { archiveChecks } from '../archive/archive-checks.js';
import { retentionChecks } from '../retention/retention-checks.js';
import { codecChecks } from '../codec/codec-checks.js';

/**
 * `pgharbor check SERVER`: the core's own checks, then every plugin's
 * (tapped on hooks.check). Never throws for a failed check: each one is a
 * line, OK or FAILED with a hint.
 */
export async function runCheck(harbor: Harbor, server: ServerHandle): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const context: CheckContext = {
    server,
    report: (result) => results.push(result),
    run: async (name, check) => {
      try {
        results.push({ name, ...(await check()) });
      } catch (error) {
        results.push({ name, ok: false, detail: errorMessage(error), hint: error instanceof HarborError ? error.hint : undefined });
      }
    },
  };

  let info: ServerInfo | undefined;
  await context.run('PostgreSQL', async () => {
    const client = await server.connect();
    try {
      info = await queryServerInfo(client);
      const role = await client.query(
        `SELECT rolsuper, rolreplication,
                pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS read_settings
           FROM pg_roles WHERE rolname = current_user`,
      );
      const walLevel = await client.query(`SELECT current_setting('wal_level') AS wal_level`);
      const r = role.rows[0];
      const privileged = r.rolsuper || (r.rolreplication && r.read_settings);
      context.report({
        name: 'superuser or standard user with backup privileges',
        ok: Boolean(privileged),
        detail: privileged ? undefined : 'the conninfo user is neither superuser nor a REPLICATION role with pg_read_all_settings',
        // pg_checkpoint (for switch-wal --force) came with PostgreSQL 15: naming it to 13 or 14 fails the GRANT.
        hint: privileged ? undefined : `ALTER ROLE ... REPLICATION; GRANT pg_read_all_settings${info.versionNum >= 150000 ? ', pg_checkpoint' : ''} TO ...; or use a superuser`,
      });
      const level = walLevel.rows[0].wal_level as string;
      context.report({
        name: 'wal_level',
        ok: level === 'replica' || level === 'logical',
        detail: level === 'minimal' ? 'wal_level is minimal' : undefined,
        hint: level === 'minimal' ? "set wal_level = 'replica' in postgresql.conf and restart PostgreSQL" : undefined,
      });
      if (info.inRecovery) {
        context.report({ name: 'primary', ok: true, detail: 'the server is a standby: backups are taken from it' });
      }
      return { ok: true, detail: info.version };
    } finally {
      await client.end().catch(() => {});
    }
  });

  const repositories = await server.repositories().catch((error: Error) => {
    context.report({ name: 'repositories', ok: false, detail: errorMessage(error), hint: error instanceof HarborError ? error.hint : undefined });
    return [];
  });
  for (const repository of repositories) {
    const label = repositories.length > 1 ? ` (${repository.name})` : '';
    await context.run(`repository writable${label}`, async () => {
      const key = `${server.name}/.pgharbor-check-${process.pid}`;
      await repository.storage.put(key, 'check\n');
      await repository.storage.delete(key);
      return { ok: true, detail: repository.location };
    });
    await context.run(`systemid coherence${label}`, async () => {
      const identity = await repository.readIdentity();
      if (!identity) return { ok: true, detail: 'no system identifier stored yet' };
      if (!info) return { ok: false, detail: 'cannot compare: PostgreSQL is not reachable', hint: 'fix the connection first' };
      const same = identity.systemIdentifier === info.systemIdentifier;
      return same
        ? { ok: true }
        : {
            ok: false,
            detail: `server has ${info.systemIdentifier}, repository has ${identity.systemIdentifier}`,
            hint: 'conninfo points at a different cluster than the one this repository backs up',
          };
    });
    await context.run(`failed backups${label}`, async () => {
      const failed = (await repository.listManifests()).filter((m) => displayStatus(m) === 'FAILED');
      return { ok: true, detail: `there are ${failed.length} failed backups` };
    });
  }

  if (info) await archiveChecks(context);
  await retentionChecks(context);
  await codecChecks(context);
  await harbor.hooks.check.promise(context);
  await harbor.hooks.checked.promise(server, results).catch(() => {});
  return results;
}
