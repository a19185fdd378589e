import type { Command } from 'commander';
import { displayStatus, resolveChain, retentionDecision, summarize, type BackupSummary, type DisplayStatus, type Repository, type RetentionStatus } from '@pgharbor/core';
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
        type Row = Omit<BackupSummary, 'status'> & { status: DisplayStatus; retention: RetentionStatus | undefined; repository: string; brokenChain?: string };
        // A manifest that failed validation is listed (so that the operator sees it) but never used: no size, no retention.
        type InvalidRow = { id: string; status: 'INVALID'; repository: string; error: { message: string } };
        const rows: (Row | InvalidRow)[] = [];
        for (const repo of repos) {
          const manifests = await repo.listManifests();
          const decision = await retentionDecision(server, repo, undefined, manifests);
          const repoRows: (Row | InvalidRow)[] = manifests.map((manifest) => {
            // A differential or incremental backup restores only with its whole chain: say so when a link is missing.
            const problem = manifest.parent && displayStatus(manifest) === 'DONE' ? resolveChain(manifests, manifest.id).problem : undefined;
            const brokenChain = problem && `needs ${problem.id}, but ${problem.reason}`;
            return { ...summarize(manifest), status: displayStatus(manifest), retention: decision.status.get(manifest.id), repository: repo.name, ...(brokenChain ? { brokenChain } : {}) };
          });
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
                  const stored = b.parent || b.reusedSize ? ` (stored ${formatBytes(b.storedSize)})` : '';
                  const size =
                    b.status === 'DONE'
                      ? `Size: ${formatBytes(b.size)}${stored} - WAL Size: ${b.walIncluded ? 'in backup' : '0 B'}`
                      : b.status === 'STARTED'
                        ? 'STARTED (in progress)'
                        : b.status === 'DELETING'
                          ? `DELETING (${deletionNote(b.deleting)})`
                          : `FAILED${b.error ? ` (${b.error.message})` : ''}`;
                  const retention = b.status === 'DONE' && b.retention ? ` - ${b.retention}` : '';
                  const type = b.parent ? ` - ${b.type.toUpperCase()} of ${b.parent}` : '';
                  const broken = b.brokenChain ? ` - BROKEN CHAIN (${b.brokenChain})` : '';
                  return `${serverName} ${b.id}${where}${type} - ${formatTime(b.stopTime ?? b.startTime)} - ${size}${retention}${broken}`;
                })
                .join('\n'),
        );
      });
    });
}
