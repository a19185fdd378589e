import type { Command } from 'commander';
import { serverStatus } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { formatBytes } from '../format.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .argument('<server>', 'server name from the config')
    .description('the summary of a server: PostgreSQL, WAL, backups, retention')
    .action(async (serverName: string, _cmd, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const s = await serverStatus(harbor.server(serverName));
        output(options, s, () =>
          [
            `Server ${serverName}:`,
            ...(s.description ? [`\tDescription: ${s.description}`] : []),
            `\tActive: ${s.active ? 'True' : `False (${s.error})`}`,
            ...(s.active
              ? [
                  `\tPostgreSQL version: ${s.pgVersion}`,
                  `\tCluster state: ${s.clusterState}`,
                  `\tCurrent data size: ${formatBytes(s.dataSize ?? 0)}`,
                  `\tCurrent WAL segment: ${s.currentWal ?? '-'}`,
                  `\tLast archived WAL: ${s.lastArchivedWal ?? '-'}${s.lastArchivedTime ? `, at ${s.lastArchivedTime}` : ''}`,
                  `\tFailed WAL archives: ${s.failedArchives}`,
                ]
              : []),
            `\tMinimum redundancy: ${s.minimumRedundancy}`,
            ...s.repositories.flatMap((r) => [
              `\tRepository ${r.name} (${r.location}):`,
              `\t\tRetention policy: ${r.retention}`,
              `\t\tNo. of available backups: ${r.backups}${r.failedBackups ? ` (and ${r.failedBackups} FAILED)` : ''}${r.deletingBackups ? ` (and ${r.deletingBackups} DELETING: an interrupted deletion the next delete, expire or cron finishes)` : ''}`,
              `\t\tFirst available backup: ${r.firstBackup ?? '-'}`,
              `\t\tLast available backup: ${r.lastBackup ?? '-'}`,
              `\t\tMinimum redundancy requirements: ${r.minimumRedundancySatisfied ? 'satisfied' : 'FAILED'} (${r.backups}/${s.minimumRedundancy})`,
            ]),
          ].join('\n'),
        );
      });
    });
}
