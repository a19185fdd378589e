import type { Command } from 'commander';
import { Option } from 'commander';
import { keepBackup } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parseRepo } from '../parse-options.js';

export function registerKeep(program: Command): void {
  program
    .command('keep')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .addOption(new Option('--target <target>', 'full: keep it and the WAL after it; standalone: only the WAL that makes it consistent').choices(['full', 'standalone']).default('full'))
    .option('--release', 'stop keeping it: the retention policy decides again')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .description('keep a backup forever, whatever the retention policy says (or --release it)')
    .action(async (serverName: string, backupId: string, cmd: { target: 'full' | 'standalone'; release?: boolean; repo?: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const manifest = await keepBackup(harbor.server(serverName), backupId, cmd);
        output(options, { backup: manifest.id, keep: manifest.keep ?? null }, () =>
          manifest.keep ? `Backup ${manifest.id} of ${serverName} is kept (KEEP:${manifest.keep.toUpperCase()}).` : `Backup ${manifest.id} of ${serverName} is no longer kept.`,
        );
      });
    });
}
