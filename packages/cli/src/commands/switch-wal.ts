import type { Command } from 'commander';
import { switchWal } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parsePositiveInt } from '../parse-options.js';

export function registerSwitchWal(program: Command): void {
  program
    .command('switch-wal')
    .argument('<server>', 'server name from the config')
    .option('--force', 'CHECKPOINT first, so that an idle server switches too')
    .option('--archive', 'wait until the closed WAL file is in every repository')
    .option('--archive-timeout <seconds>', 'how long --archive waits', parsePositiveInt, 30)
    .description('close the current WAL segment (pg_switch_wal) and optionally wait for it to be archived')
    .action(async (serverName: string, cmd: { force?: boolean; archive?: boolean; archiveTimeout: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const result = await switchWal(harbor, harbor.server(serverName), {
          force: cmd.force,
          archive: cmd.archive,
          timeoutSeconds: cmd.archiveTimeout,
          onWaiting: (file) => {
            if (!options.json) process.stdout.write(`The WAL file ${file} has been closed on server '${serverName}'\nWaiting for the WAL file ${file} from server '${serverName}' (max: ${cmd.archiveTimeout} seconds)\n`);
          },
        });
        output(options, result, () =>
          !result.walFile
            ? `No switch required for server '${serverName}' (no WAL written since the last switch; use --force)`
            : result.archived
              ? `${result.walFile} is archived`
              : `The WAL file ${result.walFile} has been closed on server '${serverName}'`,
        );
      });
    });
}
