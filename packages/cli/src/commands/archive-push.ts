import type { Command } from 'commander';
import { archivePush } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';

export function registerArchivePush(program: Command): void {
  program
    .command('archive-push')
    .argument('<server>', 'server name from the config')
    .argument('<wal-path>', "the %p of archive_command: archive_command = 'pgharbor archive-push SERVER %p'")
    .description('store a WAL file in every repository of the server (for archive_command)')
    .action(async (serverName: string, walPath: string, _options, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const results = await archivePush(harbor, harbor.server(serverName), walPath);
        // archive_command output lands in the PostgreSQL log: say nothing on success unless asked.
        if (options.json) output(options, results, () => '');
      });
    });
}
