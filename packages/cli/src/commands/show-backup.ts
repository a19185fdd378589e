import type { Command } from 'commander';
import { describePolicy, displayStatus, policyFor, resolveBackup, resolveChain, dependentsOf, retentionDecision, summarize, type BackupManifest } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { deletionNote, formatBytes, formatDuration } from '../format.js';
import { parseRepo } from '../parse-options.js';

export function registerShowBackup(program: Command): void {
  program
    .command('show-backup')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .description('show everything known about one backup')
    .action(async (serverName: string, backupId: string, cmd: { repo?: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const repo = await harbor.server(serverName).repository(cmd.repo);
        const manifest = await resolveBackup(repo, backupId);
        const manifests = await repo.listManifests();
        const ids = manifests.filter((m) => displayStatus(m) === 'DONE').map((m) => m.id);
        const at = ids.indexOf(manifest.id);
        const previous = at > 0 ? ids[at - 1] : undefined;
        const next = at >= 0 && at < ids.length - 1 ? ids[at + 1] : undefined;
        const status = displayStatus(manifest);
        const server = harbor.server(serverName);
        const retention = (await retentionDecision(server, repo, undefined, manifests)).status.get(manifest.id);
        const policy = describePolicy(policyFor(server, repo));
        const { chain: ancestors, problem } = resolveChain(manifests, manifest.id);
        const chain: ChainInfo = {
          chain: [...ancestors.map((m) => m.id), manifest.id],
          dependents: dependentsOf(manifests, manifest.id).map((m) => m.id).reverse(),
          ...(problem ? { broken: `needs ${problem.id} (for ${problem.neededBy}), but ${problem.reason}` } : {}),
        };
        output(options, { ...summarize(manifest), status, retention, retentionPolicy: policy, repository: repo.name, previousBackup: previous ?? null, nextBackup: next ?? null, ...chain }, () =>
          describe(manifest, status, repo.name, previous, next, `${retention ?? '-'} (policy: ${policy})`, chain),
        );
      });
    });
}

interface ChainInfo {
  /** The backups a restore of this one reads, oldest (the full) first, this one last. */
  chain: string[];
  /** Backups that need this one, oldest first. */
  dependents: string[];
  broken?: string;
}

function describe(m: BackupManifest, status: string, repository: string, previous: string | undefined, next: string | undefined, retention: string, chain: ChainInfo): string {
  const seconds = m.stopTime ? (Date.parse(m.stopTime) - Date.parse(m.startTime)) / 1000 : undefined;
  const walFiles = m.files.filter((f) => f.type === 'file' && /^pg_wal\/[0-9A-F]{24}$/.test(f.path));
  const lines = [
    `Backup ${m.id}:`,
    `  Server Name            : ${m.server}`,
    `  System Id              : ${m.systemIdentifier}`,
    `  Status                 : ${status}${status === 'DELETING' ? ` (${deletionNote(m.deleting)})` : m.error ? ` (${m.error.message})` : ''}`,
    `  PostgreSQL Version     : ${m.pgVersion}`,
    `  PGDATA directory       : ${m.dataDirectory}`,
    `  Repository             : ${repository}`,
    `  Method                 : ${m.method}`,
    `  Backup Type            : ${m.type}${m.parent ? ` (parent ${m.parent})` : ''}`,
    ...(m.parent || chain.broken ? [`  Chain                  : ${chain.chain.join(' -> ')}${chain.broken ? ` BROKEN: ${chain.broken}` : ''}`] : []),
    ...(chain.dependents.length ? [`  Needed by              : ${chain.dependents.join(', ')}`] : []),
    `  Label                  : ${m.label}`,
    ...(m.tablespaces.length ? ['  Tablespaces            :', ...m.tablespaces.map((t) => `    ${t.name} (oid ${t.oid}) : ${t.location}`)] : []),
    '',
    '  Base backup information:',
    `    Disk usage           : ${formatBytes(m.size)} (${formatBytes(m.storedSize)} stored by this backup)`,
    ...(m.reusedSize !== undefined ? [`    Incremental size     : ${formatBytes(m.size - m.reusedSize)} (-${percent(m.reusedSize, m.size)}, reuse ${m.reuse})`] : []),
    `    Files                : ${m.files.filter((f) => f.type === 'file').length} in ${m.bundles.length} bundles`,
    `    Timeline             : ${m.timeline ?? '-'}`,
    `    Begin WAL            : ${m.startWal ?? '-'}`,
    `    End WAL              : ${m.stopWal ?? '-'}`,
    `    WAL number           : ${walFiles.length} (inside the backup: ${m.walIncluded ? 'yes' : 'no'})`,
    `    Begin time           : ${m.startTime}`,
    `    End time             : ${m.stopTime ?? '-'}`,
    ...(seconds !== undefined ? [`    Copy time            : ${formatDuration(seconds)}`, `    Estimated throughput : ${formatBytes(m.size / Math.max(seconds, 0.001))}/s`] : []),
    `    Begin LSN            : ${m.startLsn ?? '-'}`,
    `    End LSN              : ${m.stopLsn ?? '-'}`,
    '',
    '  Catalog information:',
    `    Retention Policy     : ${retention}`,
    `    Previous Backup      : ${previous ?? '- (this is the oldest base backup)'}`,
    `    Next Backup          : ${next ?? '- (this is the latest base backup)'}`,
  ];
  if (m.error?.hint) lines.push(`  HINT: ${m.error.hint}`);
  return lines.join('\n');
}

/** Barman's "(-87.45%)": how much of the full size an incremental backup did not store again. */
function percent(part: number, whole: number): string {
  return `${whole ? ((100 * part) / whole).toFixed(2) : '0.00'}%`;
}
