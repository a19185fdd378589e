import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import { HarborError } from '../errors.js';
import { findArchivedWal } from './wal-archive.js';

export interface SwitchWalOptions {
  /** CHECKPOINT first, so that an idle server (no WAL since the last switch) switches too. */
  force?: boolean;
  /** Wait until the closed segment is stored in every repository. */
  archive?: boolean;
  timeoutSeconds?: number;
  onWaiting?: (walFile: string) => void;
}

export interface SwitchWalResult {
  /** The segment that was closed, or undefined when there was nothing to switch. */
  walFile?: string;
  archived?: boolean;
}

/** `pgharbor switch-wal`: pg_switch_wal(), and optionally wait for the archive (Barman's switch-wal --archive). */
export async function switchWal(harbor: Harbor, server: ServerHandle, options: SwitchWalOptions = {}): Promise<SwitchWalResult> {
  const client = await server.connect();
  let walFile: string | undefined;
  try {
    if (options.force) await client.query('CHECKPOINT');
    const { rows } = await client.query(
      `SELECT pg_walfile_name(lsn) AS file, (lsn - '0/0'::pg_lsn) % pg_size_bytes(current_setting('wal_segment_size')) = 0 AS idle
         FROM (SELECT pg_switch_wal() AS lsn) s`,
    );
    // At a segment boundary nothing was written since the last switch: no segment was closed.
    if (!rows[0].idle) walFile = rows[0].file as string;
  } catch (error) {
    const message = (error as Error).message;
    throw new HarborError(`switch-wal on ${server.name} failed: ${message}`, {
      hint: /recovery/.test(message) ? 'the server is a standby: switch WAL on the primary' : 'the conninfo user needs EXECUTE on pg_switch_wal() (and pg_checkpoint or superuser for --force)',
    });
  } finally {
    await client.end().catch(() => {});
  }
  if (!walFile) return {};
  if (!options.archive) return { walFile };

  options.onWaiting?.(walFile);
  const deadline = Date.now() + (options.timeoutSeconds ?? 30) * 1000;
  const repositories = await server.repositories();
  for (;;) {
    const stored = await Promise.all(repositories.map(async (repo) => (await findArchivedWal(repo.storage, server.name, walFile!)).some((w) => w.sha256)));
    if (stored.every(Boolean)) return { walFile, archived: true };
    if (Date.now() > deadline) {
      throw new HarborError(`the WAL file ${walFile} of ${server.name} did not reach ${repositories.filter((_, i) => !stored[i]).map((r) => r.name).join(', ')} within ${options.timeoutSeconds ?? 30} s`, {
        hint: 'check archive_command (pgharbor archive-push) and pg_stat_archiver, or that receive-wal runs; raise --archive-timeout on a busy server',
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
