import { execa } from 'execa';
import { queryServerInfo, type CheckContext } from '@pgharbor/core';
import { parseSshCommand, sshArgv, type SshCommand } from './ssh-command.js';
import { backupFunctions } from './pg-backup-api.js';
import type { RsyncServerOptions } from './rsync-method.js';

/** The checks `pgharbor check` runs for servers backed up with rsync over ssh. */
export async function rsyncChecks(context: CheckContext): Promise<void> {
  const { server } = context;
  if (server.config.method !== 'rsync') return;
  const options = server.config as RsyncServerOptions;
  let ssh: SshCommand;
  try {
    ssh = parseSshCommand(options.ssh_command ?? '', `servers.${server.name}.ssh_command`);
  } catch (error) {
    context.report({ name: 'ssh', ok: false, detail: (error as Error).message, hint: 'set ssh_command, e.g. "ssh postgres@db1"' });
    return;
  }
  const remote = async (command: string[]) => {
    const [program, args] = sshArgv(ssh, command);
    return execa(program, args, { reject: false, stdin: 'ignore', timeout: 30_000 });
  };

  let sshOk = false;
  await context.run('ssh', async () => {
    const result = await remote(['true']);
    sshOk = result.exitCode === 0;
    return sshOk
      ? { ok: true, detail: `${ssh.destination} reachable` }
      : { ok: false, detail: lastLine(result.stderr) || `exit ${result.exitCode}`, hint: `"${ssh.text} true" must work without a password prompt (keys, known_hosts)` };
  });

  await context.run('rsync (local)', async () => {
    const result = await execa(options.local_rsync_path ?? 'rsync', ['--version'], { reject: false });
    return result.exitCode === 0 ? { ok: true, detail: firstLine(result.stdout) } : { ok: false, detail: 'rsync not found on this host', hint: 'apt-get install rsync, or set local_rsync_path' };
  });

  if (sshOk) {
    await context.run('rsync (remote)', async () => {
      const result = await remote([options.remote_rsync_path ?? 'rsync', '--version']);
      return result.exitCode === 0 ? { ok: true, detail: `${ssh.host}: ${firstLine(result.stdout)}` } : { ok: false, detail: `${ssh.host}: ${lastLine(result.stderr) || 'rsync not runnable'}`, hint: `install rsync on ${ssh.host}, or set remote_rsync_path` };
    });
  }

  const client = await server.connect().catch(() => undefined);
  if (!client) return; // the core's connection check already says why
  try {
    const info = await queryServerInfo(client);
    if (sshOk) {
      await context.run('data directory over ssh', async () => {
        const result = await remote(['test', '-r', `${info.dataDirectory}/PG_VERSION`]);
        return result.exitCode === 0
          ? { ok: true, detail: `${ssh.host}:${info.dataDirectory}` }
          : { ok: false, detail: `${ssh.destination} cannot read ${info.dataDirectory}/PG_VERSION`, hint: 'log in as the PostgreSQL OS user (e.g. ssh postgres@host), or one that can read the data directory' };
      });
    }
    await context.run('backup privileges', async () => {
      const functions = backupFunctions(info.versionNum);
      const { rows } = await client.query(`SELECT has_function_privilege($1, 'EXECUTE') AS start, has_function_privilege($2, 'EXECUTE') AS stop`, [functions.start, functions.stop]);
      return rows[0].start && rows[0].stop
        ? { ok: true, detail: `${functions.start}, ${functions.stop}` }
        : { ok: false, detail: `the conninfo user may not run ${!rows[0].start ? functions.start : functions.stop}`, hint: `GRANT EXECUTE ON FUNCTION ${functions.start} TO <user>; GRANT EXECUTE ON FUNCTION ${functions.stop} TO <user>;` };
    });
    await context.run('WAL archiving for rsync', async () => {
      const { rows } = await client.query(`SELECT current_setting('archive_mode') AS mode`);
      return rows[0].mode !== 'off' || options.streaming_archiver
        ? { ok: true, detail: rows[0].mode !== 'off' ? `archive_mode ${rows[0].mode}` : 'receive-wal (streaming_archiver)' }
        : { ok: false, detail: 'archive_mode is off and streaming_archiver is not set', hint: 'rsync backups are restorable only with their WAL archived: set archive_command to pgharbor archive-push, or use receive-wal' };
    });
  } finally {
    await client.end().catch(() => {});
  }
}

function firstLine(text: unknown): string {
  return String(text ?? '').split('\n')[0].trim();
}

function lastLine(text: unknown): string {
  return String(text ?? '').trim().split('\n').at(-1)?.trim() ?? '';
}
