import type { Command } from 'commander';
import { loadHarbor, type GlobalOptions } from '../cli-context.js';
import type { WalArgs } from '../wal-args.js';
import { processIo } from '../wal-server.js';
import { runWalWork } from '../wal-work.js';

export function registerArchiveGet(program: Command): void {
  program
    .command('archive-get')
    .argument('<server>', 'server name from the config')
    .argument('<wal-file>', 'the %f of restore_command')
    .argument('<destination>', 'the %p of restore_command')
    .description("fetch a WAL file from the repositories (for restore_command = 'pgharbor archive-get SERVER %f %p')")
    .action(async (serverName: string, name: string, destination: string, _options, command: Command) => {
      // Mostly reached for arguments the WAL paths do not parse themselves (bin.ts): the same work, wal-work.ts.
      const options = command.optsWithGlobals<GlobalOptions>();
      const args: WalArgs = { config: options.config, json: options.json ?? false, logLevel: options.logLevel, command: 'archive-get', operands: [serverName, name, destination] };
      process.exitCode = (await runWalWork(() => loadHarbor(options), args, process.cwd(), processIo)) ?? 2;
    });
}
