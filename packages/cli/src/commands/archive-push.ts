import type { Command } from 'commander';
import { archivePush, archivePushAsync, asyncArchiveSettings, closeInheritedDescriptors, runAsyncArchiver } from '@pgharbor/core';
import { archiverStarter } from '../archiver-spawn.js';
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
        const server = harbor.server(serverName);
        if (server.config.archive_async) {
          const settings = asyncArchiveSettings(harbor, server);
          await archivePushAsync(settings, serverName, walPath, archiverStarter(harbor.config.filepath, serverName, settings.spoolDir));
          return;
        }
        const results = await archivePush(harbor, server, walPath);
        // archive_command output lands in the PostgreSQL log: say nothing on success unless asked.
        if (options.json) output(options, results, () => '');
      });
    });
}

export function registerArchivePushAsync(program: Command): void {
  program
    .command('archive-push-async', { hidden: true })
    .argument('<server>', 'server name from the config')
    .requiredOption('--pg-wal <dir>', 'the pg_wal directory whose .ready files to push')
    .description('the background archiver that archive-push starts when archive_async is on')
    .action(async (serverName: string, cmd: { pgWal: string }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      closeInheritedDescriptors(); // it outlives the archive-push that started it
      await withHarbor(options, async (harbor) => {
        await runAsyncArchiver(harbor, harbor.server(serverName), cmd.pgWal);
      });
    });
}
