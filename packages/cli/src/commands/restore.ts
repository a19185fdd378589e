import type { Command } from 'commander';
import { runRestore } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { createProgress } from '../progress.js';
import { formatBytes, formatDuration } from '../format.js';
import { collectMapping, parsePositiveInt, parseRepo } from '../parse-options.js';

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .alias('recover')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .argument('<destination>', 'new or empty directory to restore the data directory into')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .option('--tablespace-map <name=path>', 'restore a tablespace (name or oid) into PATH instead of its original location; repeatable', collectMapping)
    .option('--jobs <n>', 'bundles restored in parallel', parsePositiveInt, 2)
    .description('restore a backup into a new data directory')
    .action(
      async (
        serverName: string,
        backupId: string,
        destination: string,
        cmd: { repo?: number; tablespaceMap?: Record<string, string>; jobs: number },
        command: Command,
      ) => {
        const options = command.optsWithGlobals<GlobalOptions>();
        await withHarbor(options, async (harbor) => {
          const progress = createProgress(`restore ${serverName}`, !options.json && Boolean(process.stderr.isTTY));
          let summary;
          try {
            summary = await runRestore(harbor, harbor.server(serverName), {
              backupId,
              destination,
              repo: cmd.repo,
              tablespaceMap: cmd.tablespaceMap,
              jobs: cmd.jobs,
              onProgress: (done, total) => progress.update(done, total),
            });
          } finally {
            progress.finish();
          }
          const { backup, repository, ...rest } = summary;
          output(options, { ...rest, backupId: backup.id, repository: repository.name }, () =>
            [
              `Restored backup ${backup.id} of ${serverName} into ${summary.destination}`,
              `  ${summary.files} files, ${formatBytes(summary.bytes)}, every checksum verified, in ${formatDuration(summary.seconds)} (${formatBytes(summary.bytes / Math.max(summary.seconds, 0.001))}/s)`,
              backup.walIncluded
                ? '  The WAL needed for consistency is in place (pg_wal): PostgreSQL recovers to the end of the backup on start.'
                : '  The backup holds no WAL: configure restore_command before starting PostgreSQL.',
              '',
              'Next: check postgresql.conf / postgresql.auto.conf in the destination (port, archive_command), then start it:',
              `  pg_ctl -D ${summary.destination} start`,
            ].join('\n'),
          );
        });
      },
    );
}
