import type { Command } from 'commander';
import { replicationStatus } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { formatBytes } from '../format.js';

export function registerReplicationStatus(program: Command): void {
  program
    .command('replication-status')
    .argument('<server>', 'server name from the config')
    .description('show the streaming clients (standbys, receive-wal) and replication slots of the server')
    .action(async (serverName: string, _cmd, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const status = await replicationStatus(harbor.server(serverName));
        const lag = (lsn: string | null, bytes: number | null) => (lsn ? `${lsn} (diff: ${formatBytes(bytes ?? 0)})` : '-');
        output(options, status, () =>
          [
            `Status of streaming clients for server '${serverName}':`,
            `  Current LSN on ${status.inRecovery ? 'standby' : 'master'}: ${status.currentLsn}`,
            `  Number of streaming clients: ${status.clients.length}`,
            ...status.clients.flatMap((c, i) => [
              `  ${i + 1}. ${c.syncState === 'sync' ? 'Sync' : c.syncState === 'potential' ? 'Potential sync' : 'Async'} ${c.applicationName.includes('receive_wal') ? 'WAL streamer' : 'standby'}`,
              `     Application name: ${c.applicationName}`,
              `     Sync stage      : ${c.syncState} (priority ${c.syncPriority})`,
              `     Communication   : ${c.clientAddress ? 'TCP/IP' : 'Unix domain socket'}`,
              ...(c.clientAddress ? [`     IP Address      : ${c.clientAddress} / Port: ${c.clientPort}`] : []),
              `     User name       : ${c.user}`,
              `     Current state   : ${c.state} (${c.syncState})`,
              `     Replication slot: ${c.slot ?? '-'}`,
              `     WAL sender PID  : ${c.pid}`,
              `     Started at      : ${c.startedAt}`,
              `     Sent LSN   : ${lag(c.sentLsn, c.sentLag)}`,
              `     Write LSN  : ${lag(c.writeLsn, c.writeLag)}`,
              `     Flush LSN  : ${lag(c.flushLsn, c.flushLag)}`,
              `     Replay LSN : ${lag(c.replayLsn, c.replayLag)}`,
            ]),
            `  Replication slots: ${status.slots.length === 0 ? 'none' : ''}`,
            ...status.slots.map((s) => `    ${s.name} (${s.type}): ${s.active ? 'active' : 'inactive'}, restart LSN ${s.restartLsn ?? '-'}, holds ${formatBytes(s.retainedBytes ?? 0)}${s.walStatus ? `, wal_status ${s.walStatus}` : ''}`),
          ].join('\n'),
        );
      });
    });
}
