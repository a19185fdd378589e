import type { CheckContext } from '../check/check-context.js';
import { readFile } from 'node:fs/promises';
import { listArchivedWal } from './wal-archive.js';
import { alarmFile, asyncArchiveSettings } from './archive-async.js';

/**
 * `check` lines for WAL shipping, in the words a Barman user knows:
 * "WAL archive", "archiver errors", "archive_mode".
 */
export async function archiveChecks(context: CheckContext): Promise<void> {
  const { server } = context;
  const streaming = Boolean(server.config.streaming_archiver);
  let archiveMode: string | undefined;
  await context.run('archiver errors', async () => {
    const client = await server.connect();
    try {
      const { rows } = await client.query(
        `SELECT current_setting('archive_mode') AS mode, current_setting('archive_command') AS command,
                failed_count, last_failed_wal, last_failed_time, last_archived_time
           FROM pg_stat_archiver`,
      );
      const r = rows[0];
      archiveMode = r.mode;
      // Backups carry their own WAL, so a server without archiving is a valid choice, not a failure;
      // but say plainly what it costs.
      context.report({
        name: 'archive_mode',
        ok: true,
        detail:
          r.mode === 'off' && !streaming
            ? "off: backups restore on their own, but point-in-time recovery needs archive_mode = on with archive_command = 'pgharbor archive-push SERVER %p', or streaming_archiver: true"
            : `${r.mode}${r.command ? `, archive_command = ${r.command}` : ''}`,
      });
      const failing = r.last_failed_time && (!r.last_archived_time || r.last_failed_time > r.last_archived_time);
      return failing
        ? { ok: false, detail: `archive_command failed for ${r.last_failed_wal} at ${new Date(r.last_failed_time).toISOString()} (${r.failed_count} failures)`, hint: 'see the PostgreSQL log for the archive-push error' }
        : { ok: true, detail: `${r.failed_count} failures since the statistics reset` };
    } finally {
      await client.end().catch(() => {});
    }
  });
  if (archiveMode === 'off' && !streaming) return;
  if (server.config.archive_async) {
    await context.run('async archive queue', async () => {
      const alarm = await readFile(alarmFile(asyncArchiveSettings(server.harbor, server).spoolDir), 'utf8').catch(() => undefined);
      if (!alarm) return { ok: true };
      const { since, message } = JSON.parse(alarm) as { since: string; message: string };
      return { ok: false, detail: `${message} (since ${since})`, hint: 'the repositories are slower than the WAL the server writes: raise archive_process_max, check the repository, or raise archive_queue_max' };
    });
  }
  for (const repository of await server.repositories()) {
    await context.run(`WAL archive${(await server.repositories()).length > 1 ? ` (${repository.name})` : ''}`, async () => {
      for await (const wal of listArchivedWal(repository.storage, server.name)) {
        return { ok: true, detail: `WAL arrives (e.g. ${wal.name})` };
      }
      return {
        ok: false,
        detail: 'no WAL archived yet',
        hint: `please make sure WAL shipping is set up, then run: pgharbor switch-wal --force --archive ${server.name}`,
      };
    });
  }
}
