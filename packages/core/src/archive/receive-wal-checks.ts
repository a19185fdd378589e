import type { Harbor } from '../harbor.js';
import { errorMessage } from '../errors.js';
import { probeClientTool } from '../postgres/client-tool.js';
import { readSlot, receiveWalStatus } from './receive-wal.js';

/**
 * `check` lines of the streaming archiver, as Barman words them:
 * "receive-wal running" and "replication slot". Only for servers with
 * streaming_archiver on.
 */
export function tapReceiveWalChecks(harbor: Harbor): void {
  harbor.hooks.check.tapPromise('pgharbor:receive-wal', async (context) => {
    const { server } = context;
    if (!server.config.streaming_archiver) return;
    const { running, pid, status, settings } = receiveWalStatus(harbor, server);
    const start = `run \`pgharbor receive-wal ${server.name}\` (in the background, or under a service manager) or \`pgharbor cron\``;
    await context.run('receive-wal running', async () => {
      if (!running) {
        const last = status && status.state !== 'stopped' && status.detail ? `; last state ${status.state}: ${status.detail}` : '';
        return { ok: false, detail: `not running${last}`, hint: start };
      }
      if (status?.state === 'failed') {
        return { ok: false, detail: `pid ${pid}, but pg_receivewal is failing since ${status.since}: ${status.detail ?? 'see its log'}`, hint: 'see the receive-wal log; it retries on its own' };
      }
      const what = status?.state === 'streaming' ? `streaming ${status.detail ?? ''}`.trim() : (status?.state ?? 'starting');
      return { ok: true, detail: `pid ${pid}, ${what}${status?.lastSegment ? `, last archived ${status.lastSegment}` : ''}` };
    });
    // pg_receivewal refuses servers newer than itself (Debian 12's is 15): name the one to install.
    await context.run('pg_receivewal', async () => {
      const client = await server.connect();
      let versionNum: number;
      try {
        versionNum = (await client.query("SELECT current_setting('server_version_num')::int AS v")).rows[0].v;
      } finally {
        await client.end().catch(() => {});
      }
      const probe = await probeClientTool(server, 'pg_receivewal', versionNum);
      return { ok: probe.ok, detail: probe.detail, hint: probe.hint };
    });
    await context.run('replication slot', async () => {
      const client = await server.connect();
      try {
        const slot = await readSlot(client, settings.slot);
        if (!slot) {
          return {
            ok: false,
            detail: `slot "${settings.slot}" does not exist`,
            hint: settings.createSlot === 'auto' ? `receive-wal creates it when it starts; or: pgharbor receive-wal --create-slot ${server.name}` : `pgharbor receive-wal --create-slot ${server.name}`,
          };
        }
        if (slot.slot_type !== 'physical') return { ok: false, detail: `slot "${settings.slot}" is a ${slot.slot_type} slot`, hint: 'receive-wal needs a physical slot: choose another name with slot:' };
        if (slot.wal_status === 'lost') {
          return {
            ok: false,
            detail: `slot "${settings.slot}" lost WAL the server removed (wal_status lost): the archive has a gap`,
            hint: `take a new backup; receive-wal resets itself, or run pgharbor receive-wal --reset ${server.name}`,
          };
        }
        if (!slot.active) return { ok: false, detail: `slot "${settings.slot}" exists but is not in use (restart_lsn ${slot.restart_lsn ?? 'none'})`, hint: start };
        return { ok: true, detail: `"${settings.slot}" active, restart_lsn ${slot.restart_lsn ?? 'none'}` };
      } catch (error) {
        return { ok: false, detail: errorMessage(error), hint: 'fix the connection first' };
      } finally {
        await client.end().catch(() => {});
      }
    });
  });
}
