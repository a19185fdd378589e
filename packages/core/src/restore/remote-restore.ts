import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { RecoveryEvent } from '../hooks.js';
import { ConfigError, HarborError, errorMessage } from '../errors.js';
import { chooseBackup, mapTablespaces, rewriteTablespaceMap, runRestore, type RestoreOptions, type RestoreSummary } from './run-restore.js';
import { assertTargetReachable, validateRecoveryTarget } from './recovery-target.js';
import { stageWalForRecovery, type StagedWal } from './stage-wal.js';
import { parseSshCommand } from '../remote/ssh-command.js';
import { RemoteHost, type RemoteDirState } from '../remote/remote-host.js';
import { loadExeca } from '../lazy-execa.js';
import { checkSeparateRoots } from './contained-tree.js';

/**
 * Recovery onto another host, as `barman recover --remote-ssh-command`:
 * restore into a local staging directory with the recovery configuration
 * written for the remote side, copy the WAL recovery needs next to it, then
 * rsync it over ssh, pg_control last. The remote host needs rsync and
 * PostgreSQL, not pgharbor: recovery reads the WAL with `cp`.
 */
export interface RemoteRestoreOptions extends Omit<RestoreOptions, 'destination' | 'restoreCommand' | 'recoveryEndCommand' | 'delta' | 'handOverOwnership' | 'staged'> {
  /** Absolute path of the data directory on the remote host (absent or empty). */
  destination: string;
  /** The ssh command line, destination last: `ssh -p 2222 postgres@pgb`. */
  sshCommand: string;
  /** rsync on the remote host, when not on its PATH. */
  remoteRsyncPath?: string;
  /** Local parent directory of the staging copy (default <state_dir>/restore-staging); the copy is removed afterwards. */
  stagingDir?: string;
  /** Called as each step starts, for progress messages. */
  onStep?: (step: string) => void;
}

export interface RemoteRestoreSummary extends Omit<RestoreSummary, 'destination'> {
  host: string;
  sshCommand: string;
  /** The data directory on the remote host. */
  destination: string;
  /** Tablespaces as restored on the remote host. */
  tablespaces: { oid: number; name: string; location: string }[];
  /** WAL copied into <destination>/pgharbor_wal for restore_command. */
  wal: StagedWal & { directory: string };
  /** The local staging directory used (already removed). */
  stagingDir: string;
}

/** Relative to the data directory: PostgreSQL runs restore_command there. */
export const REMOTE_WAL_DIR = 'pgharbor_wal';
/**
 * The archived copy first, else its .partial copy (a segment that was never
 * completed, as the seed's `cp %f %p || cp %f.partial %p`). A file that is
 * not there exits 1 quietly (PostgreSQL probes for history files that do not
 * exist); a cp that fails on a file that is there still says why in the log.
 */
export const REMOTE_RESTORE_COMMAND =
  `test -f ${REMOTE_WAL_DIR}/%f && exec cp ${REMOTE_WAL_DIR}/%f %p; ` +
  `test -f ${REMOTE_WAL_DIR}/%f.partial && exec cp ${REMOTE_WAL_DIR}/%f.partial %p; exit 1`;
/** Once recovery has ended the copied WAL is no longer needed (Barman: rm -fr barman_wal). */
export const REMOTE_RECOVERY_END_COMMAND = `rm -fr ${REMOTE_WAL_DIR}`;

const CONTROL_FILE = 'global/pg_control';

export async function runRemoteRestore(harbor: Harbor, server: ServerHandle, options: RemoteRestoreOptions): Promise<RemoteRestoreSummary> {
  const ssh = parseSshCommand(options.sshCommand);
  const destination = remotePath(options.destination, 'the destination');
  const target = options.target ?? {};
  validateRecoveryTarget(target);
  const repository = await server.repository(options.repo);
  const backup = await chooseBackup(repository, options.backupId, target);
  assertTargetReachable(backup, target);
  const remoteSpaces = [...mapTablespaces(backup, options.tablespaceMap ?? {})].map(([oid, location]) => ({
    oid,
    name: backup.tablespaces.find((t) => t.oid === oid)!.name,
    location: remotePath(location, `tablespace ${oid}`),
  }));

  checkSeparateRoots(destination, new Map(remoteSpaces.map((s) => [s.oid, s.location])));

  // Everything that can refuse does so before the (long) local restore, and before anything is written there.
  const remote = new RemoteHost(ssh, options.remoteRsyncPath);
  await assertLocalRsync();
  options.onStep?.(`checking ${destination} on ${ssh.host}`);
  const probe = await remote.probe([destination, ...remoteSpaces.map((s) => s.location)]);
  if (!probe.rsync) {
    throw new HarborError(`rsync is not available on ${ssh.host} (looked for "${remote.rsyncPath}" as ${ssh.destination})`, {
      hint: `install rsync on ${ssh.host}${options.remoteRsyncPath ? ', or give its path with --remote-rsync-path' : ' (or give its path with --remote-rsync-path)'}`,
    });
  }
  for (const dir of probe.dirs) assertUsable(dir, ssh.host);

  // Hooks, hook scripts and notifications name the remote destination, as rsync writes it, and hear of success only once it is there.
  const event: RecoveryEvent = { server: server.name, backupId: backup.id, destination: `${ssh.destination}:${destination}`, repository: repository.location };
  const started = Date.now();
  const staging = await makeStagingDir(options.stagingDir ?? path.join(harbor.stateDir(), 'restore-staging'), server.name);
  const stagingData = path.join(staging, 'data');
  const stagingSpace = (oid: number) => path.join(staging, 'tablespaces', String(oid));
  let shipping = false;
  try {
    options.onStep?.(`restoring backup ${backup.id} into the staging directory ${staging}`);
    // runRestore fires recovery.failed itself when it fails.
    const summary = await runRestore(harbor, server, {
      ...options,
      backupId: backup.id,
      destination: stagingData,
      tablespaceMap: Object.fromEntries(remoteSpaces.map((s) => [String(s.oid), stagingSpace(s.oid)])),
      restoreCommand: REMOTE_RESTORE_COMMAND,
      recoveryEndCommand: REMOTE_RECOVERY_END_COMMAND,
      // A copy on another host must not archive into this server's repository (Barman's "dangerous settings").
      archiveMode: options.archiveMode ?? 'off',
      handOverOwnership: false,
      staged: { eventDestination: event.destination },
    }).catch((error: unknown) => {
      const inner = error instanceof HarborError && error.cause instanceof HarborError ? error.cause.hint : undefined;
      throw new HarborError(errorMessage(error), { hint: [`nothing was written on ${ssh.host}`, inner].filter(Boolean).join('; '), cause: error });
    });

    try {
      let wal: StagedWal = { files: 0, bytes: 0 };
      if (summary.recovery.settings.some((s) => s.startsWith('restore_command'))) {
        options.onStep?.('copying the archived WAL recovery needs');
        wal = await stageWalForRecovery(harbor, server, backup, repository, path.join(stagingData, REMOTE_WAL_DIR), options.jobs);
      }
      // The staged links and tablespace_map name the staging directories: point them at the remote ones.
      for (const space of remoteSpaces) {
        const link = path.join(stagingData, 'pg_tblspc', String(space.oid));
        await fs.rm(link, { force: true });
        await fs.symlink(space.location, link);
      }
      await rewriteTablespaceMap(stagingData, new Map(remoteSpaces.map((s) => [s.oid, s.location])));

      options.onStep?.(`copying to ${ssh.host}:${destination}`);
      shipping = true;
      await remote.makeDirectories([destination, ...remoteSpaces.map((s) => s.location)]);
      for (const space of remoteSpaces) await remote.push(`${stagingSpace(space.oid)}/`, `${space.location}/`);
      // pg_control last, after the rest is durable: until it arrives PostgreSQL refuses to start the directory.
      await remote.push(`${stagingData}/`, `${destination}/`, [`--exclude=/${CONTROL_FILE}`]);
      for (const dir of [destination, ...remoteSpaces.map((s) => s.location)]) await remote.sync(dir);
      await remote.push(path.join(stagingData, CONTROL_FILE), `${destination}/${CONTROL_FILE}`);
      await remote.sync(destination);

      const result = { files: summary.files, bytes: summary.bytes, seconds: (Date.now() - started) / 1000 };
      await harbor.hooks.recovery.after.promise(event, result);
      return {
        ...summary,
        ...result,
        recovery: { ...summary.recovery, file: `${destination}/${path.basename(summary.recovery.file)}` },
        host: ssh.host,
        sshCommand: ssh.text,
        destination,
        tablespaces: remoteSpaces,
        wal: { ...wal, directory: `${destination}/${REMOTE_WAL_DIR}` },
        stagingDir: staging,
      };
    } catch (error) {
      const failure = error instanceof HarborError ? error : new HarborError(errorMessage(error), { cause: error });
      const where = shipping
        ? `${destination} on ${ssh.host} is incomplete (no ${CONTROL_FILE}, or not yet durable): PostgreSQL refuses to start it; remove it there and restore again`
        : `nothing was written on ${ssh.host}`;
      const wrapped = new HarborError(failure.message, { hint: [where, failure.hint].filter(Boolean).join('. '), cause: error });
      await harbor.hooks.recovery.failed.promise(event, wrapped).catch(() => {});
      throw wrapped;
    }
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

async function makeStagingDir(parent: string, server: string): Promise<string> {
  try {
    await fs.mkdir(parent, { recursive: true, mode: 0o700 });
    return await fs.mkdtemp(path.join(path.resolve(parent), `pgharbor-remote-restore-${server}-`));
  } catch (error) {
    throw new HarborError(`cannot create a staging directory in ${parent}: ${errorMessage(error)}`, {
      hint: 'give a writable local directory with room for the backup and its WAL: --staging-dir DIR',
    });
  }
}

function remotePath(p: string, what: string): string {
  if (!path.posix.isAbsolute(p)) throw new ConfigError(`${what} on the remote host must be an absolute path, not "${p}"`, 'give the full path, e.g. /var/lib/postgresql/15/main');
  const normal = path.posix.normalize(p).replace(/(.)\/+$/, '$1');
  if (normal === '/') throw new ConfigError(`${what} on the remote host cannot be /`, 'give a directory for the data');
  return normal;
}

function assertUsable(dir: RemoteDirState, host: string): void {
  switch (dir.state) {
    case 'absent':
    case 'empty':
      return;
    case 'not-empty':
      throw new HarborError(`restore target ${dir.path} on ${host} is not empty (e.g. ${dir.entries.join(', ')})`, {
        hint: 'restore into a new or empty directory; move or remove what is there first (stop PostgreSQL if it runs there)',
      });
    case 'not-a-directory':
      throw new HarborError(`restore target ${dir.path} on ${host} exists and is not a directory`, { hint: 'give a new or empty directory' });
    case 'not-writable':
      throw new HarborError(`restore target ${dir.path} on ${host} cannot be created: ${dir.blocker} is not a writable directory for the ssh user`, {
        hint: `create it there first, owned by the ssh user: install -d -o postgres -m 700 ${dir.path}`,
      });
  }
}

async function assertLocalRsync(): Promise<void> {
  const execa = await loadExeca();
  const result = await execa('rsync', ['--version'], { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) throw new HarborError('rsync is not installed on this host', { hint: 'install rsync here and on the destination host' });
}
