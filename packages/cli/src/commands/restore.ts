import type { Command } from 'commander';
import path from 'node:path';
import { Option } from 'commander';
import { HarborError, runRemoteRestore, runRestore, withoutSecrets, type RemoteRestoreSummary, type RestoreSummary } from '@pgharbor/core';
import { archiveGetCommand } from '../self-command.js';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { createProgress } from '../progress.js';
import { formatBytes, formatDuration } from '../format.js';
import { collectMapping, parsePositiveInt, parseRepo } from '../parse-options.js';

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .alias('recover')
    .argument('<server>', 'server name from the config')
    .argument('<backup>', 'backup id, "latest" or "oldest"')
    .argument('<destination>', 'new or empty directory to restore the data directory into (with --delta: the existing, stopped data directory; with --remote-ssh-command: an absolute path on that host)')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .option('--tablespace-map <name=path>', 'restore a tablespace (name or oid) into PATH instead of its original location; repeatable', collectMapping)
    .option('--jobs <n>', 'bundles restored in parallel (default: 4 for a backup stored uncompressed and unencrypted, else 2)', parsePositiveInt)
    .option('--delta', 'refresh an existing data directory of the same cluster (PostgreSQL stopped): keep files whose checksum matches, rewrite the rest, remove extras')
    .option('--target-time <time>', 'recover up to this time, e.g. "2021-09-27 09:33:46.013798+00"')
    .option('--target-xid <xid>', 'recover up to this transaction id')
    .option('--target-lsn <lsn>', 'recover up to this WAL position, e.g. 0/55000028')
    .option('--target-name <name>', 'recover up to this restore point (pg_create_restore_point)')
    .option('--target-immediate', 'stop as soon as the backup is consistent')
    .option('--exclusive', 'stop just before the target instead of just after it')
    .addOption(new Option('--target-action <action>', 'what PostgreSQL does at the target (default: pause)').choices(['pause', 'promote', 'shutdown']))
    .option('--target-tli <timeline>', 'timeline to follow: latest (default), current or a number')
    .option('--standby', 'make the restored cluster a streaming standby of the server (standby.signal, primary_conninfo)')
    .option('--primary-conninfo <conninfo>', 'primary_conninfo for --standby (default: the streaming_conninfo of the server)')
    .option('--primary-slot <slot>', 'primary_slot_name for --standby')
    .option('--remote-ssh-command <command>', 'restore onto another host: the ssh command line that reaches it, destination last, e.g. "ssh postgres@pgb" (needs rsync there; the files belong to the ssh user)')
    .option('--remote-rsync-path <path>', 'with --remote-ssh-command: rsync on the remote host, when not on its PATH')
    .option('--staging-dir <dir>', 'with --remote-ssh-command: local directory for the staging copy (default <state_dir>/restore-staging); needs room for the backup and its WAL, removed afterwards')
    .addOption(new Option('--archive-mode <mode>', 'preserve or switch off archiving in the restored cluster (default: preserve when restoring into the server\'s own data directory path here, off otherwise and always off with --remote-ssh-command)').choices(['preserve', 'off']))
    .option('--keep-sync', 'keep synchronous_standby_names in a restored copy (default: cleared, so that its commits never wait for the origin\'s standbys)')
    .option('--keep-subscriptions', 'keep logical replication subscriptions running in a restored copy (default: max_logical_replication_workers = 0)')
    .description('restore a backup into a new data directory, here or on another host (--remote-ssh-command)')
    .addHelpText(
      'after',
      [
        '',
        'Onto another host (as barman recover --remote-ssh-command): the host needs PostgreSQL and rsync, not pgharbor.',
        'The backup is staged here, the WAL recovery needs is copied into DEST/pgharbor_wal for a cp restore_command,',
        'archiving is switched off, and everything is copied with rsync over that ssh command, pg_control last:',
        '  pgharbor restore pga latest /var/lib/postgresql/15/main \\',
        '      --remote-ssh-command "ssh -p 2222 postgres@pgb" --target-time "2021-10-18 05:17:05.751485+00"',
        'Then start PostgreSQL on that host; when paused at the target, SELECT pg_wal_replay_resume(); promotes it.',
      ].join('\n'),
    )
    .action(
      async (
        serverName: string,
        backupId: string,
        destination: string,
        cmd: {
          repo?: number;
          tablespaceMap?: Record<string, string>;
          jobs?: number;
          targetTime?: string;
          targetXid?: string;
          targetLsn?: string;
          targetName?: string;
          targetImmediate?: boolean;
          exclusive?: boolean;
          targetAction?: 'pause' | 'promote' | 'shutdown';
          targetTli?: string;
          standby?: boolean;
          primaryConninfo?: string;
          primarySlot?: string;
          archiveMode?: 'preserve' | 'off';
          keepSync?: boolean;
          keepSubscriptions?: boolean;
          delta?: boolean;
          remoteSshCommand?: string;
          remoteRsyncPath?: string;
          stagingDir?: string;
        },
        command: Command,
      ) => {
        const options = command.optsWithGlobals<GlobalOptions>();
        await withHarbor(options, async (harbor) => {
          const progress = createProgress(`restore ${serverName}`, !options.json && Boolean(process.stderr.isTTY));
          const server = harbor.server(serverName);
          const target = {
            time: cmd.targetTime,
            xid: cmd.targetXid,
            lsn: cmd.targetLsn,
            name: cmd.targetName,
            immediate: cmd.targetImmediate,
            exclusive: cmd.exclusive,
            action: cmd.targetAction,
            timeline: cmd.targetTli,
          };
          const standby = cmd.standby
            ? {
                // Without the password: the data directory is copied around (remote restore), the standby's OS user keeps it in ~/.pgpass.
                primaryConninfo: cmd.primaryConninfo ?? withoutSecrets(server.streamingConninfo, { application_name: path.basename(path.resolve(destination)) }),
                slot: cmd.primarySlot,
              }
            : undefined;
          if (cmd.remoteSshCommand) {
            if (cmd.delta) throw new HarborError('--delta cannot be combined with --remote-ssh-command', { hint: 'a remote restore writes into a new or empty directory', exitCode: 2 });
            const staging = createProgress(`restore ${serverName} (staging)`, !options.json && Boolean(process.stderr.isTTY));
            const remote = await runRemoteRestore(harbor, server, {
              target,
              standby,
              archiveMode: cmd.archiveMode,
              keepSync: cmd.keepSync,
              keepSubscriptions: cmd.keepSubscriptions,
              backupId,
              destination,
              sshCommand: cmd.remoteSshCommand,
              remoteRsyncPath: cmd.remoteRsyncPath,
              stagingDir: cmd.stagingDir,
              repo: cmd.repo,
              tablespaceMap: cmd.tablespaceMap,
              jobs: cmd.jobs,
              onProgress: (done, total) => staging.update(done, total),
              onStep: (step) => {
                staging.finish();
                if (!options.json) harbor.logger.info(step);
              },
            }).finally(() => staging.finish());
            const { backup, repository, recovery, ...rest } = remote;
            output(options, { ...rest, backupId: backup.id, repository: repository.name, recovery }, () => describeRemoteRestore(serverName, remote, cmd.targetAction));
            return;
          }
          if (cmd.remoteRsyncPath || cmd.stagingDir) {
            throw new HarborError(`${cmd.remoteRsyncPath ? '--remote-rsync-path' : '--staging-dir'} needs --remote-ssh-command`, { hint: 'they apply to a restore onto another host', exitCode: 2 });
          }
          let summary;
          try {
            summary = await runRestore(harbor, server, {
              target,
              restoreCommand: archiveGetCommand(harbor.config.filepath, serverName),
              standby,
              archiveMode: cmd.archiveMode,
              keepSync: cmd.keepSync,
              keepSubscriptions: cmd.keepSubscriptions,
              backupId,
              destination,
              repo: cmd.repo,
              tablespaceMap: cmd.tablespaceMap,
              jobs: cmd.jobs,
              delta: cmd.delta,
              onProgress: (done, total) => progress.update(done, total),
            });
          } finally {
            progress.finish();
          }
          const { backup, repository, recovery, ...rest } = summary;
          output(options, { ...rest, backupId: backup.id, repository: repository.name, recovery }, () => describeRestore(serverName, summary!, cmd.targetAction));
        });
      },
    );
}

function describeRestore(serverName: string, summary: RestoreSummary, action: string | undefined): string {
  const { backup, recovery } = summary;
  const lines = [
    `Restored backup ${backup.id} of ${serverName} into ${summary.destination}`,
    `  ${summary.files} files, ${formatBytes(summary.bytes)}, every checksum verified, in ${formatDuration(summary.seconds)} (${formatBytes(summary.bytes / Math.max(summary.seconds, 0.001))}/s)`,
  ];
  if (summary.delta) {
    const d = summary.delta;
    lines[1] = `  delta: ${d.keptFiles} files (${formatBytes(d.keptBytes)}) kept, ${d.copiedFiles} files (${formatBytes(d.copiedBytes)}) copied, ${d.removed} extra entries removed; every checksum verified, in ${formatDuration(summary.seconds)}`;
  }
  if (recovery.archiveRecovery) {
    lines.push(`  Recovery settings written to ${recovery.file}:`, ...recovery.settings.map((s) => `    ${s}`));
  } else {
    lines.push('  The WAL needed for consistency is in place (pg_wal): PostgreSQL recovers to the end of the backup on start.');
  }
  if (recovery.changed.length) lines.push('', 'IMPORTANT: these settings were changed to prevent data loss:', ...recovery.changed.map((c) => `  ${c}`));
  lines.push('', `Next: check the port and paths in postgresql.conf, then start PostgreSQL: pg_ctl -D ${summary.destination} start`);
  const hasTarget = recovery.settings.some((s) => s.startsWith('recovery_target'));
  if (hasTarget && (action ?? 'pause') === 'pause') {
    lines.push('PostgreSQL will pause at the target, read-only. Check the data, then promote it with:', '  SELECT pg_wal_replay_resume();', 'Do not remove recovery.signal by hand: the server would restart without the recovery you asked for.');
  }
  return lines.join('\n');
}

/** As Barman's recover does: what was done, what was changed, and what the DBA does next on that host. */
function describeRemoteRestore(serverName: string, summary: RemoteRestoreSummary, action: string | undefined): string {
  const { backup, recovery, host } = summary;
  const lines = [
    `Restored backup ${backup.id} of ${serverName} onto ${host}: ${summary.destination}`,
    `  Remote command: ${summary.sshCommand}`,
    `  ${summary.files} files, ${formatBytes(summary.bytes)}, every checksum verified, in ${formatDuration(summary.seconds)} (staged locally, then copied with rsync, pg_control last)`,
    ...summary.tablespaces.map((t) => `  Tablespace ${t.name} (oid ${t.oid}): ${t.location}`),
  ];
  if (recovery.archiveRecovery) {
    if (summary.wal.files > 0) lines.push(`  ${summary.wal.files} archived WAL files (${formatBytes(summary.wal.bytes)}) copied to ${summary.wal.directory}, removed by recovery_end_command once recovery ends`);
    lines.push(`  Recovery settings written to ${recovery.file}:`, ...recovery.settings.map((s) => `    ${s}`));
  } else {
    lines.push('  The WAL needed for consistency is in place (pg_wal): PostgreSQL recovers to the end of the backup on start.');
  }
  if (recovery.changed.length) lines.push('', 'IMPORTANT: these settings were changed to prevent data loss:', ...recovery.changed.map((c) => `  ${c}`));
  lines.push(
    '',
    `Next, on ${host}: check the port and paths in ${summary.destination}/postgresql.conf (and postgresql.auto.conf), then start PostgreSQL on ${host}:`,
    `  pg_ctl -D ${summary.destination} start   (or your service manager, with its data directory set to ${summary.destination})`,
  );
  const hasTarget = recovery.settings.some((s) => s.startsWith('recovery_target'));
  if (hasTarget && (action ?? 'pause') === 'pause') {
    lines.push(
      'PostgreSQL will pause at the target, read-only. Check the data, then run on it',
      '  SELECT pg_wal_replay_resume();',
      'to promote it. Do not remove recovery.signal by hand: the server would restart without the recovery you asked for.',
    );
  }
  return lines.join('\n');
}
