import type { Command } from 'commander';
import { HarborError, acquireLock, displayStatus, resolveBackup } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parseRepo } from '../parse-options.js';

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .description('delete a backup (DONE or FAILED) from a repository')
    .action(async (serverName: string, backupId: string, cmd: { repo?: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const repo = await harbor.server(serverName).repository(cmd.repo);
        const manifest = await resolveBackup(repo, backupId);
        if (displayStatus(manifest) === 'STARTED') {
          throw new HarborError(`backup ${manifest.id} of ${serverName} is still running (pid ${manifest.process?.pid} on ${manifest.process?.hostname})`, {
            hint: 'wait for it to end, or stop that process first',
          });
        }
        // The backup lock keeps delete from racing a backup that reuses files.
        const lock = await acquireLock(repo, 'backup', 'delete');
        try {
          await repo.deleteBackup(manifest.id);
        } finally {
          await lock.release();
        }
        output(options, { deleted: manifest.id, repository: repo.name }, () => `Deleted backup ${manifest.id} of ${serverName} from ${repo.name}.`);
      });
    });
}
