import type { Command } from 'commander';
import { runVerify, type VerifyReport } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { createProgress } from '../progress.js';
import { formatBytes, formatDuration } from '../format.js';
import { parsePositiveInt, parseRepo } from '../parse-options.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .argument('<server>', 'server name from the config')
    .argument('[backup]', 'backup id, "latest" or "oldest" (default: every completed backup)')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .option('--wal', "also check the WAL: the backup's range present and readable, and no segment missing in the archive after it")
    .option('--pg-verifybackup', "also run PostgreSQL's pg_verifybackup against the backup's backup_manifest (on a temporary plain copy)")
    .option('--temp-dir <dir>', 'where --pg-verifybackup writes its temporary copy (default: the system temp dir)')
    .option('--jobs <n>', 'bundles read in parallel', parsePositiveInt, 2)
    .description('re-read every stored file of a backup, decrypt, decompress and check its checksum; exit 1 on any problem')
    .action(
      async (serverName: string, backupId: string | undefined, cmd: { repo?: number; wal?: boolean; pgVerifybackup?: boolean; tempDir?: string; jobs: number }, command: Command) => {
        const options = command.optsWithGlobals<GlobalOptions>();
        await withHarbor(options, async (harbor) => {
          const progress = createProgress(`verify ${serverName}`, !options.json && Boolean(process.stderr.isTTY));
          let report: VerifyReport;
          try {
            report = await runVerify(harbor, harbor.server(serverName), {
              backupId,
              repo: cmd.repo,
              wal: cmd.wal,
              pgVerifybackup: cmd.pgVerifybackup,
              tempDir: cmd.tempDir,
              jobs: cmd.jobs,
              onProgress: (done, total) => progress.update(done, total),
            });
          } finally {
            progress.finish();
          }
          output(options, report, () => describe(report));
          if (report.problems > 0) process.exitCode = 1;
        });
      },
    );
}

function describe(report: VerifyReport): string {
  const lines: string[] = [];
  for (const backup of report.backups) {
    const rate = backup.seconds > 0 ? ` (${formatBytes(backup.bytes / backup.seconds)}/s)` : '';
    lines.push(
      `Backup ${backup.backupId} of ${report.server} (${report.repository}): ${backup.files} files, ${formatBytes(backup.bytes)} (${formatBytes(backup.storedBytes)} stored) read back in ${formatDuration(backup.seconds)}${rate}: ${backup.problems.length === 0 ? 'OK' : `${backup.problems.length} problem${backup.problems.length === 1 ? '' : 's'}`}`,
    );
    if (backup.wal) {
      const w = backup.wal;
      lines.push(w.note ? `  WAL: ${w.note}` : `  WAL ${w.from} .. ${w.to}: ${w.inBackup} in the backup, ${w.checked} archived segments read back, ${w.missing.length} missing`);
    }
    if (backup.pgVerifybackup) {
      const p = backup.pgVerifybackup;
      lines.push(p.ran ? `  pg_verifybackup: ${p.problems.length === 0 ? 'OK' : 'FAILED'}` : `  pg_verifybackup: skipped: ${p.skipped}`);
    }
    for (const problem of backup.problems) lines.push(`  PROBLEM ${problem.file ? `${problem.file}: ` : ''}${problem.message.startsWith(`${problem.file}: `) ? problem.message.slice(problem.file!.length + 2) : problem.message}`);
  }
  lines.push(report.problems === 0 ? 'verify: every checksum matches' : `verify: ${report.problems} problem${report.problems === 1 ? '' : 's'} found; see above`);
  return lines.join('\n');
}
