import type { Command } from 'commander';
import { Option } from 'commander';
import { isWalSegmentName, recordedDigest, resolveBackup } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parseRepo } from '../parse-options.js';

export function registerListFiles(program: Command): void {
  program
    .command('list-files')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .addOption(new Option('--target <target>', 'data: data files; wal: WAL needed for consistency; standalone: both; full: both').choices(['data', 'wal', 'standalone', 'full']).default('standalone'))
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .description('list the files of a backup (paths relative to the data directory)')
    .action(async (serverName: string, backupId: string, cmd: { target: string; repo?: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const repo = await harbor.server(serverName).repository(cmd.repo);
        const manifest = await resolveBackup(repo, backupId);
        const isWal = (path: string) => path.startsWith('pg_wal/') && isWalSegmentName(path.slice(7));
        const files = manifest.files.filter((f) => {
          if (f.type !== 'file') return false;
          if (cmd.target === 'data') return !isWal(f.path);
          if (cmd.target === 'wal') return isWal(f.path);
          return true;
        });
        output(
          options,
          files.map((f) => ({ path: f.path, size: f.size, digest: recordedDigest(f), bundle: f.bundle, offset: f.offset })),
          () => files.map((f) => f.path).join('\n'),
        );
      });
    });
}
