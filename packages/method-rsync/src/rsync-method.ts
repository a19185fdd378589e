import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import {
  HarborError,
  WRITTEN_FILE_DIGEST,
  digestAlgorithmOf,
  digestOfLocalFile,
  matchesRecorded,
  recordedDigest,
  findArchivedWal,
  nextSegment,
  parseBackupLabel,
  queryServerInfo,
  walFileBefore,
  type BackupManifest,
  type BackupMethod,
  type JsonSchema,
  type ManifestFile,
  type MethodContext,
  type MethodResult,
  type ServerInfo,
} from '@pgharbor/core';
import { parseSshCommand } from './ssh-command.js';
import { copyPaths, copyTree, listRemote, type RemoteEntry, type RsyncEndpoint } from './rsync-runner.js';
import { DATA_DIRECTORY_EXCLUDES, TABLESPACE_EXCLUDES, excludeArgs } from './pg-excludes.js';
import { planCopy } from './copy-plan.js';
import { pruneTree, scanTree, statIn, type LocalEntry } from './local-tree.js';
import { startBackup, stopBackup } from './pg-backup-api.js';
import { MIRROR_STATE_FILE, readMirrorState, stagingMirror, writeMirrorState } from './staging-mirror.js';

export type ReuseMode = 'off' | 'copy' | 'link';

export interface RsyncServerOptions {
  ssh_command?: string;
  reuse_backup?: ReuseMode;
  parallel_jobs?: number;
  network_compression?: boolean;
  bandwidth_limit?: string;
  remote_rsync_path?: string;
  local_rsync_path?: string;
  staging_dir?: string;
  immediate_checkpoint?: boolean;
  wal_archive_timeout?: number;
  streaming_archiver?: boolean;
}

export const rsyncServerOptions: Record<string, JsonSchema> = {
  ssh_command: { type: 'string', minLength: 1, description: 'rsync method: ssh command line that logs into the database host, destination last, e.g. "ssh postgres@db1"' },
  reuse_backup: { enum: ['off', 'copy', 'link'], description: 'rsync method: link (default) hard-links files unchanged since the previous backup; copy copies them locally; off copies everything' },
  parallel_jobs: { type: 'integer', minimum: 1, maximum: 64, description: 'rsync method: rsync processes copying at once (default 1)' },
  network_compression: { type: 'boolean', description: 'rsync method: compress on the wire (rsync -z)' },
  bandwidth_limit: { type: 'string', pattern: '^[0-9]+[KMG]?$', description: 'rsync method: rsync --bwlimit, e.g. "20M" (per rsync process)' },
  remote_rsync_path: { type: 'string', minLength: 1, description: 'rsync method: rsync on the database host, when not on its PATH' },
  local_rsync_path: { type: 'string', minLength: 1, description: 'rsync method: rsync on this host, when not on PATH' },
  staging_dir: { type: 'string', description: 'local directory for staging copies (tablespace tars of basebackup; the rsync mirror for non-posix or encrypted repositories)' },
  wal_archive_timeout: { type: 'integer', minimum: 1, description: 'rsync method: seconds to wait for the backup WAL to reach the repository (default 120)' },
};

/** The two files pg_backup_stop hands back, stored as part of the backup. */
const LABEL_FILES = ['backup_label', 'tablespace_map'];

/**
 * Backups by file copy: pg_backup_start in a session held open, rsync of
 * the data directory and tablespaces from the database host over ssh,
 * pg_backup_stop, then wait until the WAL of the backup is archived (the
 * copy is inconsistent on its own; WAL replay makes it whole).
 */
export const rsyncMethod: BackupMethod = {
  serverOptions: rsyncServerOptions,

  async run(context: MethodContext): Promise<MethodResult> {
    const { server, sink } = context;
    const options = { ...server.config, ...context.overrides } as RsyncServerOptions;
    if (!options.ssh_command) {
      throw new HarborError(`server ${server.name}: method rsync needs ssh_command`, { hint: 'add e.g. ssh_command: "ssh postgres@db1" to the server (the ssh login that can read the data directory)', exitCode: 2 });
    }
    const endpoint: RsyncEndpoint = {
      ssh: parseSshCommand(options.ssh_command, `servers.${server.name}.ssh_command`),
      localRsync: options.local_rsync_path ?? 'rsync',
      remoteRsync: options.remote_rsync_path,
      compress: options.network_compression ?? false,
      bandwidthLimit: options.bandwidth_limit,
      signal: context.signal,
    };
    const reuse: ReuseMode = options.reuse_backup ?? 'link';
    const jobs = options.parallel_jobs ?? 1;

    const client = await server.connect();
    try {
      const info = await queryServerInfo(client);
      if (info.inRecovery) throw new HarborError(`server ${server.name} is a standby: the rsync method backs up primaries`, { hint: 'back up the primary, or use method basebackup on the standby' });
      await requireWalArchive(client, server.name, options);
      const sizes = await client.query(`SELECT sum(pg_database_size(oid))::bigint AS size FROM pg_database`);
      context.setExpectedBytes(Number(sizes.rows[0].size));

      const previous = reuse === 'off' ? undefined : await sink.previousBackup();
      const tree = sink.tree();
      const target = tree ? await treeTarget(sink, tree, previous) : await mirrorTarget(context, options, info.systemIdentifier);
      await fs.mkdir(target.dir, { recursive: true, mode: 0o700 });
      const copyStarted = Math.floor(Date.now() / 1000);

      const clock = Date.now();
      const phase = (what: string) => context.logger.debug(`rsync backup of ${server.name}: ${what} after ${((Date.now() - clock) / 1000).toFixed(2)} s`);
      await startBackup(client, info.versionNum, context.label, options.immediate_checkpoint ?? false, server.name);
      phase('backup started (checkpoint done)');
      context.logger.info(`rsync backup of ${server.name}: copying ${info.dataDirectory} from ${endpoint.ssh.destination} (reuse ${tree ? (target.base ? reuse : 'off') : 'reference'}, ${jobs} job${jobs > 1 ? 's' : ''})`);
      const listed = new Set<string>(['pg_tblspc', MIRROR_STATE_FILE]);
      for (const source of sourcesOf(info)) {
        if (tree && !target.base && jobs === 1) {
          // Nothing to compare with, one process: a plain recursive copy, no listing first.
          await copyTree(endpoint, source.remote, path.join(target.dir, source.prefix), excludeArgs(source.excludes));
          continue;
        }
        const entries = await listRemote(endpoint, source.remote, excludeArgs(source.excludes));
        phase(`${source.remote} listed: ${entries.length} entries`);
        for (const entry of entries) listed.add(source.prefix ? `${source.prefix}/${entry.path}` : entry.path);
        if (source.prefix) listed.add(source.prefix);
        await copySource(endpoint, source, entries, target, tree ? reuse : 'mirror', jobs);
      }
      if (!tree) await pruneTree(target.dir, listed); // the mirror drops what the cluster dropped
      phase('files copied');

      // Not PostgreSQL's own wait for the archiver (it polls once a second): waitForWal below checks the repository itself.
      const stop = await stopBackup(client, info.versionNum, false, server.name);
      await writeLabelFiles(target.dir, stop.labelFile, stop.spcmapFile);
      phase('backup stopped');
      const label = parseBackupLabel(stop.labelFile);
      const stopWal = walFileBefore(label.timeline, stop.lsn, info.walSegmentSize);
      await waitForWal(context, label.startWal, stopWal, info.walSegmentSize, options.wal_archive_timeout ?? 120);

      phase(`WAL ${label.startWal}..${stopWal} archived`);
      if (tree) await recordTree(context, target.dir, info, previous, target.base);
      else {
        await recordFromMirror(context, target.dir, info, previous);
        await writeMirrorState(target.dir, { horizon: copyStarted, systemIdentifier: info.systemIdentifier });
      }
      phase('files recorded');
      return {
        startLsn: label.startLsn,
        stopLsn: stop.lsn,
        checkpointLsn: label.checkpointLsn,
        startWal: label.startWal,
        stopWal,
        timeline: label.timeline,
        startTime: label.startTime,
        walIncluded: false,
        tablespaces: info.tablespaces,
        reuse: tree ? (target.base ? reuse : 'off') : previous ? 'reference' : 'off',
      };
    } finally {
      // Ending the session ends a backup still in progress (failure, abort): the server is never left in backup mode.
      await client.end().catch(() => {});
    }
  },
};

interface CopyTarget {
  /** Where the copy goes: this backup's tree, or the staging mirror. */
  dir: string;
  /** The earlier copy to compare with (and link or copy from), and when it was taken. */
  base?: { dir: string; horizon: number };
}

interface Source {
  remote: string;
  /** Where it lands inside the backup: "" for the data directory, "pg_tblspc/<oid>" for a tablespace. */
  prefix: string;
  excludes: readonly string[];
}

function sourcesOf(info: ServerInfo): Source[] {
  return [
    { remote: info.dataDirectory, prefix: '', excludes: DATA_DIRECTORY_EXCLUDES },
    ...info.tablespaces.map((space) => ({ remote: space.location, prefix: `pg_tblspc/${space.oid}`, excludes: TABLESPACE_EXCLUDES })),
  ];
}

/** Tree in the repository; the previous backup's tree, when it has one, is what unchanged files come from. */
async function treeTarget(sink: MethodContext['sink'], tree: string, previous: BackupManifest | undefined): Promise<CopyTarget> {
  const previousTree = previous && previous.files.some((f) => f.object !== undefined) ? sink.previousTree(previous.id) : undefined;
  const usable = previousTree && (await fs.stat(previousTree).then((s) => s.isDirectory()).catch(() => false));
  // A second's margin: times are compared in whole seconds.
  return { dir: tree, base: usable ? { dir: previousTree, horizon: Math.floor(Date.parse(previous!.startTime) / 1000) - 1 } : undefined };
}

async function mirrorTarget(context: MethodContext, options: RsyncServerOptions, systemIdentifier: string): Promise<CopyTarget> {
  const dir = stagingMirror(context.server, context.repository, options.staging_dir);
  const state = await readMirrorState(dir);
  if (state && state.systemIdentifier !== systemIdentifier) {
    context.logger.warn(`the staging mirror ${dir} holds another cluster (system ${state.systemIdentifier}); starting it afresh`);
    await fs.rm(dir, { recursive: true, force: true });
    return { dir };
  }
  return { dir, base: state ? { dir, horizon: state.horizon - 1 } : undefined };
}

async function copySource(endpoint: RsyncEndpoint, source: Source, entries: RemoteEntry[], target: CopyTarget, mode: ReuseMode | 'mirror', jobs: number): Promise<void> {
  const local = path.join(target.dir, source.prefix);
  await fs.mkdir(local, { recursive: true, mode: 0o700 });
  const baseDir = target.base && path.join(target.base.dir, source.prefix);
  const plan = await planCopy(entries, jobs, target.base && { stat: (p) => statIn(baseDir!, p), horizon: target.base.horizon });
  // In the mirror, rsync updates files in place of the old copy; in a new tree it links or copies from the previous one.
  const fromBase = mode === 'link' && baseDir ? { linkDest: baseDir } : mode === 'copy' && baseDir ? { copyDest: baseDir } : {};
  await Promise.all([
    ...plan.groups.map((group) => copyPaths(endpoint, source.remote, local, group, fromBase)),
    copyPaths(endpoint, source.remote, local, plan.recheck, { ...fromBase, checksum: true }),
  ]);
}

async function writeLabelFiles(dir: string, labelFile: string, spcmapFile: string): Promise<void> {
  const write = async (name: string, content: string) => {
    const file = path.join(dir, name);
    await fs.rm(file, { force: true });
    if (content) await fs.writeFile(file, content, { mode: 0o600 });
  };
  await write(LABEL_FILES[0], labelFile);
  await write(LABEL_FILES[1], spcmapFile);
}

/**
 * The copy is only restorable with the WAL from its start to its stop in
 * the repository: wait for archive_command (or receive-wal) to get it
 * there; the backup is not DONE before.
 */
async function waitForWal(context: MethodContext, startWal: string, stopWal: string, segmentSize: number, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const needed: string[] = [];
  for (let name = startWal; name <= stopWal; name = nextSegment(name, segmentSize)) needed.push(name);
  while (needed.length) {
    if ((await findArchivedWal(context.repository.storage, context.server.name, needed[0])).some((w) => w.sha256)) {
      needed.shift();
      continue;
    }
    if (context.signal.aborted) throw context.signal.reason;
    if (Date.now() > deadline) {
      throw new HarborError(`the backup's WAL ${needed[0]} did not reach the repository within ${timeoutSeconds} s (needed: ${startWal} to ${stopWal})`, {
        hint: 'check archive_command (pgharbor archive-push) and pg_stat_archiver, or that receive-wal runs; raise wal_archive_timeout on a busy server',
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The rsync method is useless without archived WAL: say so before copying anything. */
async function requireWalArchive(client: pg.Client, server: string, options: RsyncServerOptions): Promise<void> {
  const { rows } = await client.query(`SELECT current_setting('archive_mode') AS mode`);
  const archiving = rows[0].mode !== 'off';
  if (!archiving && !options.streaming_archiver) {
    throw new HarborError(`server ${server}: the rsync method needs WAL archiving, and archive_mode is off`, {
      hint: "set archive_mode = on and archive_command = 'pgharbor archive-push <server> %p' (restart needed), or streaming_archiver: true with pgharbor receive-wal",
    });
  }
}

/**
 * Manifest entries for a tree in the repository. A file that is the same
 * inode as the previous backup's (a hard link) was not stored again: its
 * checksum is the previous one, its bytes count as reused.
 */
async function recordTree(context: MethodContext, dir: string, info: ServerInfo, previous: BackupManifest | undefined, base: CopyTarget['base']): Promise<void> {
  const before = new Map((previous?.files ?? []).map((f) => [f.path, f]));
  const files: LocalEntry[] = [];
  for (const entry of await scanTree(dir)) {
    const common = entryBase(entry, info);
    if (common.type === 'file') files.push(entry);
    else context.sink.record(common as ManifestFile);
  }
  // Several files hashed at once: per-file open/read latency, not the CPU, bounds a tree of many small files.
  await forEachConcurrently(files, HASH_CONCURRENCY, async (entry) => {
    const earlier = before.get(entry.path);
    const linked = base && earlier && recordedDigest(earlier) && earlier.object !== undefined ? await statIn(base.dir, entry.path) : undefined;
    const shared = linked !== undefined && linked.dev === entry.dev && linked.ino === entry.ino;
    // A hard link to the previous backup's file is that file: its recorded digest (whatever its algorithm) still holds.
    const digest = shared ? recordedDigest(earlier!)! : await digestOfLocalFile(path.join(dir, entry.path), WRITTEN_FILE_DIGEST);
    context.sink.record({ ...entryBase(entry, info), digest, storedSize: entry.size, ...(entry.size > 0 ? { object: entry.path } : {}) } as ManifestFile, shared ? entry.size : 0);
  });
}

const HASH_CONCURRENCY = 4;

async function forEachConcurrently<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

/**
 * Manifest entries for a mirror copy (S3, SFTP or encrypted repository):
 * a file whose checksum equals the previous backup's is a reference to the
 * bytes that backup stored; any other file is stored now.
 */
async function recordFromMirror(context: MethodContext, dir: string, info: ServerInfo, previous: BackupManifest | undefined): Promise<void> {
  const before = new Map((previous?.files ?? []).map((f) => [f.path, f]));
  for (const entry of await scanTree(dir)) {
    if (entry.path === MIRROR_STATE_FILE) continue;
    const common = entryBase(entry, info);
    if (common.type !== 'file') {
      context.sink.record(common as ManifestFile);
      continue;
    }
    const file = path.join(dir, entry.path);
    const earlier = before.get(entry.path);
    if (earlier && recordedDigest(earlier) && earlier.size === entry.size && (earlier.bundle !== undefined || earlier.object !== undefined) && matchesRecorded(earlier, await digestOfLocalFile(file, digestAlgorithmOf(earlier)))) {
      const { path: _p, mode: _m, mtime: _t, ...stored } = earlier;
      // Where and how the bytes are stored (bundle, offset, codec) is the earlier backup's; path, mode and time are today's.
      context.sink.record({ ...common, ...stored, type: 'file', reference: earlier.reference ?? previous!.id } as ManifestFile, entry.size);
      continue;
    }
    await context.sink.storeFile({ path: entry.path, mode: entry.mode, mtime: entry.mtime, size: entry.size }, createReadStream(file, { highWaterMark: 1024 * 1024 }));
  }
}

/** Path, type, mode and time; tablespace directories become the pg_tblspc links PostgreSQL expects. */
function entryBase(entry: LocalEntry, info: ServerInfo): Omit<ManifestFile, 'compression' | 'encryption'> & { compression: string; encryption: string } {
  const base = { path: entry.path, size: entry.size, mtime: entry.mtime, mode: entry.mode, compression: 'none', encryption: 'none' };
  const space = /^pg_tblspc\/(\d+)$/.exec(entry.path);
  if (space && entry.type === 'directory') {
    const location = info.tablespaces.find((t) => String(t.oid) === space[1])?.location;
    if (location) return { ...base, type: 'symlink', linkTarget: location };
  }
  // pg_wal may be a link to another disk on the source; a restore gets a plain directory.
  if (entry.path === 'pg_wal' && entry.type === 'symlink') return { ...base, type: 'directory', mode: 0o700 };
  return entry.type === 'symlink' ? { ...base, type: 'symlink', linkTarget: entry.linkTarget } : { ...base, type: entry.type };
}
