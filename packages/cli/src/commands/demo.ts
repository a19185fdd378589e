import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { Harbor, createLogger, runBackup, runCheck, runRestore } from '@pgharbor/core';
import type { SandboxCluster } from '@pgharbor/sandbox';
import { formatBytes, formatDuration } from '../format.js';
import { parsePositiveInt } from '../parse-options.js';
import { createProgress } from '../progress.js';
import { selfCommand } from '../self-command.js';

const TABLES: [string, string][] = [
  ['pgbench_accounts', 'aid'],
  ['pgbench_branches', 'bid'],
  ['pgbench_tellers', 'tid'],
];

/**
 * The embedded default: a sandbox PostgreSQL, filled by pgbench, backed up
 * into a local posix repository with the real config/plugin path, restored,
 * started, and compared table by table with the original.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .option('--scale <n>', 'pgbench scale (1 ≈ 16 MB)', parsePositiveInt, 10)
    .option('--dir <path>', 'working directory for the config, repository and restore (default: a new temp dir)')
    .description('back up and restore a sandbox PostgreSQL into a local repository, and prove the data survived')
    .action(async (cmd: { scale: number; dir?: string }) => {
      // Loaded here, not at the top: every other command would pay for the sandbox (and its S3 test server) at start-up.
      const { createCluster, startExistingCluster, chownToPgUser } = await import('@pgharbor/sandbox');
      const say = (line: string) => process.stdout.write(line + '\n');
      const dir = cmd.dir ? path.resolve(cmd.dir) : await mkdtemp(path.join(os.tmpdir(), 'pgharbor-demo-'));
      await mkdir(dir, { recursive: true });
      await chownToPgUser(dir); // the restored cluster runs as the PostgreSQL OS user
      let source: SandboxCluster | undefined;
      let restored: SandboxCluster | undefined;
      try {
        say(`pgharbor demo in ${dir}`);
        source = await createCluster();
        say(`1. started a sandbox PostgreSQL on port ${source.port} (data: ${source.dataDir})`);
        await source.pgbench(['-i', '-s', String(cmd.scale), '-q', 'postgres']);
        say(`2. filled it with pgbench -i -s ${cmd.scale}`);

        const configFile = path.join(dir, 'pgharbor.config.yaml');
        await writeFile(
          configFile,
          [
            '# written by `pgharbor demo`',
            'servers:',
            '  sandbox:',
            '    description: sandbox cluster of the pgharbor demo',
            `    conninfo: "${source.conninfo}"`,
            '    immediate_checkpoint: true',
            '    repositories:',
            '      - { type: posix, path: ./repo }',
            '',
          ].join('\n'),
        );
        const harbor = await Harbor.load({ configFile, logger: createLogger({ level: 'warn' }) });
        try {
          const server = harbor.server('sandbox');
          const checks = await runCheck(harbor, server);
          const failed = checks.filter((c) => !c.ok);
          say(`3. pgharbor check: ${checks.length - failed.length}/${checks.length} OK${failed.length ? ` (FAILED: ${failed.map((c) => c.name).join(', ')})` : ''}`);

          const backupProgress = createProgress('backup');
          const manifest = await runBackup(harbor, server, { onProgress: (d, t) => backupProgress.update(d, t) });
          backupProgress.finish();
          const backupSeconds = (Date.parse(manifest.stopTime!) - Date.parse(manifest.startTime)) / 1000;
          say(`4. backup ${manifest.id}: ${formatBytes(manifest.size)} (stored as ${formatBytes(manifest.storedSize)}) in ${manifest.files.filter((f) => f.type === 'file').length} files, ${manifest.bundles.length} bundles, WAL ${manifest.startWal}..${manifest.stopWal}, ${formatDuration(backupSeconds)}`);

          const target = path.join(dir, 'restore');
          await mkdir(target, { mode: 0o700 });
          await chownToPgUser(target);
          const restoreProgress = createProgress('restore');
          const summary = await runRestore(harbor, server, { backupId: 'latest', destination: target, onProgress: (d, t) => restoreProgress.update(d, t) });
          restoreProgress.finish();
          say(`5. restored it into ${target}: ${summary.files} files, ${formatBytes(summary.bytes)}, checksums verified, ${formatDuration(summary.seconds)}`);
        } finally {
          await harbor.close();
        }

        restored = await startExistingCluster(path.join(dir, 'restore'));
        say(`6. started PostgreSQL on the restored directory (port ${restored.port})`);
        let same = true;
        for (const [table, key] of TABLES) {
          const [a, b] = await Promise.all([source.tableChecksum('postgres', table, key), restored.tableChecksum('postgres', table, key)]);
          same &&= a === b;
          say(`   ${table.padEnd(18)} source ${a}  restored ${b}  ${a === b ? 'same' : 'DIFFERENT'}`);
        }
        say(same ? '7. the restored cluster holds the same data. Done.' : '7. DATA DIFFERS: the restore is wrong.');
        const cli = selfCommand().join(' ');
        say(`\nThe config and repository stay in ${dir}; try:\n  ${cli} --config ${configFile} list-backups sandbox\n  ${cli} --config ${configFile} show-backup sandbox latest`);
        if (!same) process.exitCode = 1;
      } finally {
        await restored?.stop().catch(() => {});
        await restored?.destroy().catch(() => {});
        await source?.destroy().catch(() => {});
      }
    });
}
