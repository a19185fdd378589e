import { Command, CommanderError, Option } from 'commander';
import { HarborError, PGHARBOR_VERSION, redact } from '@pgharbor/core';
import { registerCheck } from './commands/check.js';
import { registerBackup } from './commands/backup.js';
import { registerListBackups } from './commands/list-backups.js';
import { registerShowBackup } from './commands/show-backup.js';
import { registerListFiles } from './commands/list-files.js';
import { registerDelete } from './commands/delete.js';
import { registerRestore } from './commands/restore.js';
import { registerListServers } from './commands/list-servers.js';
import { registerDemo } from './commands/demo.js';
import { registerNotifyTest } from './commands/notify-test.js';
import { registerArchivePush, registerArchivePushAsync } from './commands/archive-push.js';
import { registerArchiveGet } from './commands/archive-get.js';
import { registerSwitchWal } from './commands/switch-wal.js';
import { registerExpire } from './commands/expire.js';
import { registerKeep } from './commands/keep.js';
import { registerStatus } from './commands/status.js';
import { registerCron } from './commands/cron.js';
import { registerReplicationStatus } from './commands/replication-status.js';
import { registerReceiveWal } from './commands/receive-wal.js';
import { registerVerify } from './commands/verify.js';
import { registerSealManifests } from './commands/seal-manifests.js';

export function buildProgram(): Command {
  const program = new Command('pgharbor')
    .description('back up and recover PostgreSQL')
    .version(PGHARBOR_VERSION)
    .option('-c, --config <file>', 'config file (default: pgharbor.config.* or .pgharborrc* from the current directory up, then /etc/pgharbor)')
    .option('--json', 'machine-readable output')
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [registerCheck, registerBackup, registerListBackups, registerShowBackup, registerListFiles, registerDelete, registerRestore, registerListServers, registerDemo, registerNotifyTest, registerArchivePush, registerArchivePushAsync, registerArchiveGet, registerSwitchWal, registerReplicationStatus, registerExpire, registerKeep, registerStatus, registerCron, registerReceiveWal, registerVerify, registerSealManifests]) {
    register(program);
  }
  program.commands.forEach((command) => command.exitOverride());
  return program;
}

/** Run the CLI; resolves with the exit code (0 ok, 1 failure, 2 usage or config). */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof HarborError) {
      process.stderr.write(redact(`ERROR: ${error.message}\n${error.hint ? `HINT: ${error.hint}\n` : ''}`));
      return error.exitCode;
    }
    // Not one of ours: one line for the operator; the stack only when asked for (--log-level debug).
    const debug = argv.some((arg, i) => arg === '--log-level=debug' || (arg === '--log-level' && argv[i + 1] === 'debug'));
    const text = debug ? ((error as Error)?.stack ?? String(error)) : `${(error as Error)?.message ?? String(error)}\nHINT: run again with --log-level debug to see where it failed, and report it if it looks like a bug in pgharbor`;
    process.stderr.write(redact(`ERROR: ${text}\n`));
    return 1;
  }
}
