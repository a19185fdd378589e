import type { Command } from 'commander';
import { archiveGet } from '@pgharbor/core';
import { withHarbor, type GlobalOptions } from '../cli-context.js';

export function registerArchiveGet(program: Command): void {
  program
    .command('archive-get')
    .argument('<server>', 'server name from the config')
    .argument('<wal-file>', 'the %f of restore_command')
    .argument('<destination>', 'the %p of restore_command')
    .description("fetch a WAL file from the repositories (for restore_command = 'pgharbor archive-get SERVER %f %p')")
    .action(async (serverName: string, name: string, destination: string, _options, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const outcome = await archiveGet(harbor, harbor.server(serverName), name, destination);
        // Not found is routine (PostgreSQL probes for future timelines): exit 1 without a word.
        if (!outcome.found) process.exitCode = 1;
      });
    });
}
