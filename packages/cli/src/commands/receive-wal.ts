import type { Command } from 'commander';
import { ConfigError, closeInheritedDescriptors, createLogger, createReceiveWalSlot, dropReceiveWalSlot, resetReceiveWal, runReceiveWal, stopReceiveWal } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';

interface ReceiveWalFlags {
  createSlot?: boolean;
  dropSlot?: boolean;
  reset?: boolean;
  stop?: boolean;
  synchronous?: boolean;
}

export function registerReceiveWal(program: Command): void {
  program
    .command('receive-wal')
    .argument('<server>', 'server name from the config')
    .option('--create-slot', 'create the replication slot (slot:, default pgharbor) and exit')
    .option('--drop-slot', 'drop the replication slot and exit')
    .option('--reset', 'store what the spool holds, move it aside and restart from the server\'s position (after a recovery or a timeline switch)')
    .option('--stop', 'stop the running receive-wal of the server (it stores the .partial first)')
    .option('--synchronous', 'pg_receivewal --synchronous (default: synchronous_streaming)')
    .description('stream WAL with pg_receivewal into the repositories, in the foreground until SIGINT/SIGTERM')
    .action(async (serverName: string, flags: ReceiveWalFlags, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      const actions = (['createSlot', 'dropSlot', 'reset', 'stop'] as const).filter((a) => flags[a]);
      if (actions.length > 1) throw new ConfigError('receive-wal: choose one of --create-slot, --drop-slot, --reset, --stop', `e.g. pgharbor receive-wal --create-slot ${serverName}`);
      await withHarbor(options, async (harbor) => {
        const server = harbor.server(serverName);
        switch (actions[0]) {
          case 'createSlot': {
            const result = await createReceiveWalSlot(harbor, server);
            output(options, result, () =>
              result.created
                ? `Creating physical replication slot '${result.slot}' on server '${serverName}'\nReplication slot '${result.slot}' created${result.restartLsn ? ` (WAL reserved from ${result.restartLsn})` : ''}`
                : `Replication slot '${result.slot}' already exists on server '${serverName}'`,
            );
            return;
          }
          case 'dropSlot': {
            const result = await dropReceiveWalSlot(harbor, server);
            output(options, result, () => (result.dropped ? `Replication slot '${result.slot}' dropped on server '${serverName}'` : `Replication slot '${result.slot}' does not exist on server '${serverName}': nothing to drop`));
            return;
          }
          case 'reset': {
            const result = await resetReceiveWal(harbor, server);
            output(options, result, () => [`Resetting receive-wal directory status (${result.spoolDir})`, ...result.actions.map((a) => `  ${a}`)].join('\n'));
            return;
          }
          case 'stop': {
            const result = await stopReceiveWal(harbor, server);
            output(options, result, () =>
              result.pid
                ? `Stopped receive-wal for server '${serverName}' (pid ${result.pid})${result.status?.lastPartial ? `; last stored ${result.status.lastPartial.name}` : ''}`
                : `receive-wal is not running for server '${serverName}'`,
            );
            return;
          }
          default: {
            // A long-running process: its log lines carry the time, and it keeps nothing its starter passed down.
            closeInheritedDescriptors();
            harbor.logger = createLogger({ level: options.logLevel ?? 'info', timestamps: true });
            const abort = new AbortController();
            const stop = (signal: NodeJS.Signals) => abort.abort(new Error(`interrupted by ${signal}`));
            // Listeners stay until the end: with none left, execa's exit handler would re-raise the signal before the .partial is stored.
            process.on('SIGINT', stop).on('SIGTERM', stop);
            try {
              const status = await runReceiveWal(harbor, server, { signal: abort.signal, synchronous: flags.synchronous ? true : undefined });
              output(options, status, () => `receive-wal for server '${serverName}' stopped${status.lastPartial ? `; last stored ${status.lastPartial.name}` : ''}`);
            } finally {
              process.off('SIGINT', stop).off('SIGTERM', stop);
            }
          }
        }
      });
    });
}
