import type { Command } from 'commander';
import { closeInheritedDescriptors, runAsyncArchiver } from '@pgharbor/core';
import { loadHarbor, withHarbor, type GlobalOptions } from '../cli-context.js';
import type { WalArgs } from '../wal-args.js';
import { processIo } from '../wal-server.js';
import { runWalWork } from '../wal-work.js';

export function registerArchivePush(program: Command): void {
  program
    .command('archive-push')
    .argument('<server>', 'server name from the config')
    .argument('<wal-path>', "the %p of archive_command: archive_command = 'pgharbor archive-push SERVER %p'")
    .description('store a WAL file in every repository of the server (for archive_command)')
    .action(async (serverName: string, walPath: string, _options, command: Command) => {
      // Mostly reached for arguments the WAL paths do not parse themselves (bin.ts): the same work, wal-work.ts.
      const options = command.optsWithGlobals<GlobalOptions>();
      const args: WalArgs = { config: options.config, json: options.json ?? false, logLevel: options.logLevel, command: 'archive-push', operands: [serverName, walPath] };
      process.exitCode = (await runWalWork(() => loadHarbor(options), args, process.cwd(), processIo)) ?? 2;
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
