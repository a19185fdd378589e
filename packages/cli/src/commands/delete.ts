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
    .option('--with-dependents', 'delete the incremental/differential backups built on it (and backups reusing its files) too, newest first')
    .option('--force', 'delete even below minimum_redundancy')
    .description('delete a backup (DONE, FAILED, or DELETING: an interrupted deletion) from a repository')
    .action(async (serverName: string, backupId: string, cmd: { repo?: number; force?: boolean; withDependents?: boolean }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const { id, repository, dependents } = await deleteBackup(harbor, harbor.server(serverName), backupId, { repo: cmd.repo, force: cmd.force, withDependents: cmd.withDependents });
        output(options, { deleted: id, dependents, repository: repository.name }, () =>
          [`Deleted backup ${id} of ${serverName} from ${repository.name}.`, ...(dependents.length ? [`Deleted with it, as they depend on it: ${dependents.join(', ')}.`] : [])].join('\n'),
        );
      });
    });
}
