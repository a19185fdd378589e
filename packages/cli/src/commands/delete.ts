import type { Command } from 'commander';
import { deleteBackup } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parseRepo } from '../parse-options.js';

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .option('--force', 'delete even below minimum_redundancy, or a backup whose files others reuse')
    .description('delete a backup (DONE, FAILED, or DELETING: an interrupted deletion) from a repository')
    .action(async (serverName: string, backupId: string, cmd: { repo?: number; force?: boolean }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const { id, repository } = await deleteBackup(harbor, harbor.server(serverName), backupId, { repo: cmd.repo, force: cmd.force });
        output(options, { deleted: id, repository: repository.name }, () => `Deleted backup ${id} of ${serverName} from ${repository.name}.`);
      });
    });
}
