import type { Command } from 'commander';
import { expire } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';

export function registerExpire(program: Command): void {
  program
    .command('expire')
    .argument('<server>', 'server name from the config')
    .option('--dry-run', 'say what would be removed, remove nothing')
    .description('apply the retention policy: remove obsolete backups and the WAL no retained backup needs')
    .action(async (serverName: string, cmd: { dryRun?: boolean }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const items = await expire(harbor, harbor.server(serverName), { dryRun: cmd.dryRun });
        const verb = cmd.dryRun ? 'would remove' : 'removed';
        output(options, { dryRun: Boolean(cmd.dryRun), items }, () =>
          items.length === 0
            ? `Nothing to expire for ${serverName}.`
            : items
                .map((i) => (i.keptBecause ? `${i.repository}: kept ${i.kind} ${i.subject}: a plugin refused (${i.keptBecause})` : `${i.repository}: ${verb} ${i.kind} ${i.subject}: ${i.reason}`))
                .join('\n'),
        );
      });
    });
}
