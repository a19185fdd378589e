import type { Command } from 'commander';
import { ConfigError, expire, runBackup, summarize, type BackupType } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { createProgress } from '../progress.js';
import { formatBytes, formatDuration } from '../format.js';
import { parseRepo } from '../parse-options.js';

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .argument('<server>', 'server name from the config')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .option('--label <text>', 'backup label recorded by PostgreSQL')
    .option('--type <type>', 'full, diff (changes since the newest full) or incr (changes since the newest backup); default: the server\'s backup_type, else full', parseType)
    .option('--reuse-backup <mode>', 'rsync method: off, copy or link (overrides reuse_backup for this run)', parseReuse)
    .description('take a backup of the server into a repository')
    .action(async (serverName: string, cmd: { repo?: number; label?: string; type?: string; reuseBackup?: string }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const server = harbor.server(serverName);
        const abort = new AbortController();
        const stop = (signal: NodeJS.Signals) => abort.abort(new Error(`interrupted by ${signal}`));
        // `on`, not `once`: with no listener left, execa's exit handler would re-raise the signal and kill us before the manifest says FAILED.
        process.on('SIGINT', stop).on('SIGTERM', stop);
        const progress = createProgress(`backup ${serverName}`, !options.json && Boolean(process.stderr.isTTY));
        const started = Date.now();
        try {
          const manifest = await runBackup(harbor, server, {
            repo: cmd.repo,
            label: cmd.label,
            type: cmd.type as BackupType | undefined,
            signal: abort.signal,
            overrides: cmd.reuseBackup ? { reuse_backup: cmd.reuseBackup } : {},
            onProgress: (done, total) => progress.update(done, total),
          });
          progress.finish();
          // retention_policy_mode auto (the default): expire right after a good backup, as pgBackRest does.
          if (server.config.retention && (server.config.retention_policy_mode ?? 'auto') === 'auto') {
            for (const item of await expire(harbor, server)) {
              if (!item.keptBecause) harbor.logger.info(`expired ${item.kind} ${item.subject} from ${item.repository}: ${item.reason}`);
            }
          }
          const seconds = (Date.now() - started) / 1000;
          output(options, summarize(manifest), () =>
            [
              `Backup ${manifest.id} of ${serverName} completed (${manifest.type}${manifest.parent ? `, parent ${manifest.parent}` : ''})`,
              `  Size            : ${formatBytes(manifest.size)} in ${manifest.files.filter((f) => f.type === 'file').length} files`,
              ...(manifest.reusedSize !== undefined ? [`  Incremental size: ${formatBytes(manifest.size - manifest.reusedSize)} (${manifest.reuse ? `reuse ${manifest.reuse}: ` : ''}${formatBytes(manifest.reusedSize)} shared with earlier backups)`] : []),
              `  Stored size     : ${formatBytes(manifest.storedSize)}`,
              `  Begin/end WAL   : ${manifest.startWal} / ${manifest.stopWal} (timeline ${manifest.timeline})`,
              `  Begin/end LSN   : ${manifest.startLsn} / ${manifest.stopLsn}`,
              `  Elapsed         : ${formatDuration(seconds)} (${formatBytes(manifest.size / Math.max(seconds, 0.001))}/s)`,
            ].join('\n'),
          );
        } finally {
          progress.finish();
          process.off('SIGINT', stop).off('SIGTERM', stop);
        }
      });
    });
}

function parseReuse(value: string): string {
  if (!['off', 'copy', 'link'].includes(value)) throw new ConfigError(`--reuse-backup ${value}: unknown mode`, 'use off, copy or link');
  return value;
}

function parseType(value: string): string {
  if (!['full', 'diff', 'incr'].includes(value)) throw new ConfigError(`--type ${value}: unknown backup type`, 'use full, diff or incr');
  return value;
}
