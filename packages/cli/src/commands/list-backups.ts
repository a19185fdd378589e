import type { Command } from 'commander';
import { displayStatus, retentionDecision, summarize, type BackupSummary, type DisplayStatus, type Repository, type RetentionStatus } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { deletionNote, formatBytes, formatTime } from '../format.js';
import { parseRepo } from '../parse-options.js';

export function registerListBackups(program: Command): void {
  program
    .command('list-backups')
    .alias('list-backup')
    .argument('<server>', 'server name from the config')
    .option('--repo <n>', 'only this repository (1-based); default all', parseRepo)
    .description('list the backups of a server, newest first')
    .action(async (serverName: string, cmd: { repo?: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const server = harbor.server(serverName);
        const repos: Repository[] = cmd.repo ? [await server.repository(cmd.repo)] : await server.repositories();
        type Row = Omit<BackupSummary, 'status'> & { status: DisplayStatus; retention: RetentionStatus | undefined; repository: string };
        // A manifest that failed validation is listed (so that the operator sees it) but never used: no size, no retention.
        type InvalidRow = { id: string; status: 'INVALID'; repository: string; error: { message: string } };
        const rows: (Row | InvalidRow)[] = [];
        for (const repo of repos) {
          const manifests = await repo.listManifests();
          const decision = await retentionDecision(server, repo, undefined, manifests);
          const repoRows: (Row | InvalidRow)[] = manifests.map((manifest) => ({ ...summarize(manifest), status: displayStatus(manifest), retention: decision.status.get(manifest.id), repository: repo.name }));
          for (const [id, error] of repo.invalidManifests) repoRows.push({ id, status: 'INVALID', repository: repo.name, error: { message: error.message } });
          rows.push(...repoRows.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)));
        }
        output(options, rows, () =>
          rows.length === 0
            ? `No backups of ${serverName}.`
            : rows
                .map((b) => {
                  if (b.status === 'INVALID') return `${serverName} ${b.id}${repos.length > 1 ? ` [${b.repository}]` : ''} - INVALID (${b.error.message})`;
                  const where = repos.length > 1 ? ` [${b.repository}]` : '';
                  const size =
                    b.status === 'DONE'
                      ? `Size: ${formatBytes(b.size)} - WAL Size: ${b.walIncluded ? 'in backup' : '0 B'}`
                      : b.status === 'STARTED'
                        ? 'STARTED (in progress)'
                        : b.status === 'DELETING'
                          ? `DELETING (${deletionNote(b.deleting)})`
                          : `FAILED${b.error ? ` (${b.error.message})` : ''}`;
                  const retention = b.status === 'DONE' && b.retention ? ` - ${b.retention}` : '';
                  return `${serverName} ${b.id}${where} - ${formatTime(b.stopTime ?? b.startTime)} - ${size}${retention}`;
                })
                .join('\n'),
        );
      });
    });
}
