import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { HarborError, rsyncRemotePath, type ManifestFile } from '@pgharbor/core';
import { rsyncShell, type SshCommand } from './ssh-command.js';

/** How to reach the database host's files: ssh, rsync at both ends, and the speed knobs. */
export interface RsyncEndpoint {
  ssh: SshCommand;
  /** rsync on this host (default "rsync" from PATH). */
  localRsync: string;
  /** rsync on the database host (rsync's --rsync-path), when not on its PATH. */
  remoteRsync?: string;
  /** rsync -z: compress on the wire. */
  compress: boolean;
  /** rsync --bwlimit, e.g. "20M" or "5000" (KiB/s). */
  bandwidthLimit?: string;
  signal: AbortSignal;
}

/** One entry of a remote directory, as rsync lists it (path relative to the listed directory; mtime in whole seconds). */
export type RemoteEntry = Pick<ManifestFile, 'path' | 'size' | 'mtime' | 'mode' | 'linkTarget'> & { type: ManifestFile['type'] };

/** `rsync --list-only -r`: every file, directory and symlink under `remoteDir`, minus the excludes. */
export async function listRemote(endpoint: RsyncEndpoint, remoteDir: string, excludes: string[]): Promise<RemoteEntry[]> {
  const args = ['--list-only', '-r', ...commonArgs(endpoint), ...excludes, rsyncRemotePath(endpoint.ssh.destination, withSlash(remoteDir))];
  const stdout = await runRsync(endpoint, args, `list ${remoteDir} on ${endpoint.ssh.host}`);
  const entries: RemoteEntry[] = [];
  for (const line of stdout.split('\n')) {
    const entry = parseListLine(line);
    if (entry && entry.path !== '.') entries.push(entry);
  }
  return entries;
}

export interface CopyOptions {
  /** Hard-link unchanged files to this earlier copy (rsync --link-dest). */
  linkDest?: string;
  /** Copy unchanged files locally from this earlier copy (rsync --copy-dest). */
  copyDest?: string;
  /** Compare contents, not size and time (for files the quick check cannot be trusted with). */
  checksum?: boolean;
}

/** Copy a whole directory (minus the excludes) into `localDir`: the first backup, when there is nothing to compare with. */
export async function copyTree(endpoint: RsyncEndpoint, remoteDir: string, localDir: string, excludes: string[]): Promise<void> {
  await runRsync(endpoint, ['-rlpt', ...commonArgs(endpoint), ...excludes, rsyncRemotePath(endpoint.ssh.destination, withSlash(remoteDir)), withSlash(localDir)], `copy ${remoteDir} from ${endpoint.ssh.host}`);
}

/** Copy the listed paths (relative to `remoteDir`) into `localDir`, keeping their relative paths. */
export async function copyPaths(endpoint: RsyncEndpoint, remoteDir: string, localDir: string, paths: string[], options: CopyOptions = {}): Promise<void> {
  if (paths.length === 0) return;
  // The list goes through a file (NUL-separated): any name, any number of them.
  const listDir = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-rsync-list-'));
  try {
    const listFile = path.join(listDir, 'files');
    await writeFile(listFile, paths.join('\0') + '\0', { mode: 0o600 });
    const args = [
      // -l links, -p permissions, -t times, -d directories named in the list (without recursing);
      // not -o/-g: the copy belongs to whoever runs pgharbor, as every other repository file.
      '-lptd',
      '--files-from',
      listFile,
      '--from0',
      ...commonArgs(endpoint),
      ...(options.linkDest ? ['--link-dest', options.linkDest] : []),
      ...(options.copyDest ? ['--copy-dest', options.copyDest] : []),
      ...(options.checksum ? ['--checksum'] : []),
      rsyncRemotePath(endpoint.ssh.destination, withSlash(remoteDir)),
      withSlash(localDir),
    ];
    await runRsync(endpoint, args, `copy ${remoteDir} from ${endpoint.ssh.host}`);
  } finally {
    await rm(listDir, { recursive: true, force: true });
  }
}

function commonArgs(endpoint: RsyncEndpoint): string[] {
  return [
    '-e',
    rsyncShell(endpoint.ssh),
    ...(endpoint.remoteRsync ? ['--rsync-path', endpoint.remoteRsync] : []),
    ...(endpoint.compress ? ['-z'] : []),
    ...(endpoint.bandwidthLimit ? ['--bwlimit', endpoint.bandwidthLimit] : []),
  ];
}

/**
 * Run rsync; files that vanish while we copy are normal (PostgreSQL drops
 * and rewrites relations all the time; WAL replay sorts it out), anything
 * else fails with rsync's own words.
 */
async function runRsync(endpoint: RsyncEndpoint, args: string[], what: string): Promise<string> {
  const result = await execa(endpoint.localRsync, args, {
    reject: false,
    stdin: 'ignore',
    // The listing's dates in UTC, whatever this host's zone.
    env: { ...process.env, TZ: 'UTC' },
    cancelSignal: endpoint.signal,
    forceKillAfterDelay: 5_000,
    maxBuffer: 1024 * 1024 * 1024,
  });
  if (endpoint.signal.aborted) throw endpoint.signal.reason;
  if ((result as { code?: string }).code === 'ENOENT' || (result.exitCode === undefined && /ENOENT/.test(String(result.message)))) {
    throw new HarborError(`cannot ${what}: rsync is not installed on this host (${endpoint.localRsync} not found)`, { hint: 'install rsync (apt-get install rsync) or set local_rsync_path' });
  }
  const stderr = String(result.stderr ?? '');
  if (result.exitCode === 0 || onlyVanished(result.exitCode, stderr)) return String(result.stdout ?? '');
  throw rsyncError(endpoint, what, result.exitCode, stderr);
}

function onlyVanished(exitCode: number | undefined, stderr: string): boolean {
  if (exitCode !== 23 && exitCode !== 24) return false;
  const problems = stderr.split('\n').filter((line) => line.trim() && !/^rsync error: some files/.test(line) && !/^rsync warning: some files vanished/.test(line));
  return problems.every((line) => /vanished|No such file or directory \(2\)/.test(line));
}

function rsyncError(endpoint: RsyncEndpoint, what: string, exitCode: number | undefined, stderr: string): HarborError {
  const tail = stderr.trim().split('\n').slice(-4).join(' | ');
  const host = endpoint.ssh.host;
  if (exitCode === 255 || /ssh: |Permission denied \(publickey|Host key verification failed|Connection refused|Could not resolve hostname/.test(stderr)) {
    return new HarborError(`cannot ${what}: ssh to ${endpoint.ssh.destination} failed: ${tail}`, {
      hint: `check ssh_command (can this user run "${endpoint.ssh.text} true" without a password prompt?) and that sshd on ${host} is reachable`,
    });
  }
  if (/command not found|No such file or directory/.test(stderr) && /connection unexpectedly closed|protocol data stream/.test(stderr)) {
    return new HarborError(`cannot ${what}: rsync is not runnable on ${host}: ${tail}`, {
      hint: `install rsync on ${host}, or set remote_rsync_path to where it is`,
    });
  }
  return new HarborError(`cannot ${what}: rsync failed (exit ${exitCode ?? 'signal'}): ${tail}`, { hint: 'see rsync(1) for the exit code; fix the cause and take a new backup' });
}

/** `-rw-------          8,192 2026/11/25 17:00:00 base/1/1259` (and `name -> target` for symlinks). */
export function parseListLine(line: string): RemoteEntry | undefined {
  const match = /^([dl-])([rwxsStT-]{9})\s+([\d,.]+)\s+(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) (.+)$/.exec(line);
  if (!match) return undefined;
  const [, kind, perms, size, year, month, day, hour, minute, second, rest] = match;
  let mode = 0;
  // "S"/"T": setuid/sticky without execute, so the execute bit is off.
  for (let i = 0; i < 9; i++) mode = (mode << 1) | (perms[i] === '-' || perms[i] === 'S' || perms[i] === 'T' ? 0 : 1);
  const mtime = Date.UTC(+year, +month - 1, +day, +hour, +minute, +second) / 1000;
  const type = kind === 'd' ? 'directory' : kind === 'l' ? 'symlink' : 'file';
  const arrow = type === 'symlink' ? rest.indexOf(' -> ') : -1;
  return {
    path: arrow >= 0 ? rest.slice(0, arrow) : rest,
    type,
    size: Number(size.replace(/[,.]/g, '')),
    mtime,
    mode,
    ...(arrow >= 0 ? { linkTarget: rest.slice(arrow + 4) } : {}),
  };
}

function withSlash(dir: string): string {
  return dir.endsWith('/') ? dir : `${dir}/`;
}
