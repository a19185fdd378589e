import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { chownToPgUser, createCluster, pgOsUser, startExistingCluster, type SandboxCluster, type SandboxClusterOptions } from '@pgharbor/sandbox';

/** The built CLI, run as a user would run it. */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../packages/cli/dist/bin.cjs');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run `pgharbor ARGS` in `cwd`; never throws on a non-zero exit. */
export async function pgharbor(args: string[], options: { cwd?: string; env?: Record<string, string>; asPgUser?: boolean } = {}): Promise<CliResult> {
  const user = options.asPgUser ? asPgUser() : {};
  const result = await execa(process.execPath, [CLI, ...args], { cwd: options.cwd, reject: false, stdin: 'ignore', ...user, env: { ...options.env, ...user.env } });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/**
 * Run as the PostgreSQL OS user, as pgharbor runs in production: then the
 * repository is shared by our commands and the archive_command /
 * restore_command the clusters run.
 */
function asPgUser(): { uid?: number; gid?: number; env?: Record<string, string> } {
  if (process.getuid?.() !== 0) return {};
  const user = pgOsUser();
  return { uid: user.uid, gid: user.gid, env: { HOME: os.tmpdir() } };
}

/** Start `pgharbor ARGS` and return the running process (for kill tests). */
export function pgharborProcess(args: string[], options: { cwd?: string; asPgUser?: boolean } = {}): ResultPromise {
  return execa(process.execPath, [CLI, ...args], { cwd: options.cwd, reject: false, stdin: 'ignore', ...(options.asPgUser ? asPgUser() : {}) });
}

/** A scratch directory that the PostgreSQL OS user can use too. */
export async function scratchDir(prefix = 'pgharbor-test-'): Promise<string> {
  const root = process.env.PGHARBOR_SANDBOX_DIR ?? os.tmpdir();
  const dir = await mkdtemp(path.join(root, prefix));
  await chownToPgUser(dir);
  return dir;
}

export interface Workspace {
  dir: string;
  configFile: string;
  repoDir: string;
  cluster: SandboxCluster;
  /** pgharbor with --config pointing at this workspace's config. */
  run(args: string[]): Promise<CliResult>;
  /** A fresh, PostgreSQL-owned, empty directory to restore into. */
  restoreTarget(name?: string): Promise<string>;
  /** Start PostgreSQL on a restored data directory. */
  startRestored(dataDir: string): Promise<SandboxCluster>;
  cleanup(): Promise<void>;
}

/**
 * A sandbox cluster plus a config file describing it as server "pg" with a
 * posix repository in a scratch directory.
 */
export async function createWorkspace(
  options: {
    cluster?: SandboxClusterOptions;
    serverExtra?: string[];
    configName?: string;
    /** Run pgharbor as the PostgreSQL OS user (needed when the cluster archives into the repository). */
    asPgUser?: boolean;
    /** Set archive_command to pgharbor archive-push for server "pg". */
    archive?: boolean;
  } = {},
): Promise<Workspace> {
  const dir = await scratchDir();
  const repoDir = path.join(dir, 'repo');
  const configFile = path.join(dir, options.configName ?? 'pgharbor.config.yaml');
  const settings = { ...options.cluster?.settings };
  if (options.archive) {
    settings.archive_mode = 'on';
    settings.archive_command = `'${process.execPath}' '${CLI}' --config '${configFile}' archive-push pg %p`;
  }
  const cluster = await createCluster({ ...options.cluster, settings });
  await writeFile(
    configFile,
    [
      'servers:',
      '  pg:',
      `    conninfo: "${cluster.conninfo}"`,
      '    immediate_checkpoint: true',
      ...(options.serverExtra ?? []).map((line) => `    ${line}`),
      '    repositories:',
      '      - { type: posix, path: ./repo }',
      '',
    ].join('\n'),
  );
  const started: SandboxCluster[] = [];
  let targets = 0;
  return {
    dir,
    configFile,
    repoDir,
    cluster,
    run: (args) => pgharbor(['--config', configFile, ...args], { asPgUser: options.asPgUser }),
    async restoreTarget(name) {
      const target = path.join(dir, name ?? `restore-${++targets}`);
      await mkdir(target, { mode: 0o700 });
      await chownToPgUser(target);
      return target;
    },
    async startRestored(dataDir) {
      const restored = await startExistingCluster(dataDir);
      started.push(restored);
      return restored;
    },
    async cleanup() {
      for (const c of started) await c.destroy().catch(() => {});
      await cluster.destroy().catch(() => {});
      // A detached async archiver may still be finishing a push into the repository: retry ENOTEMPTY.
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
}

/** Ordered md5 of every pgbench table: equal checksums mean equal data. */
export async function pgbenchChecksums(cluster: SandboxCluster, database = 'postgres'): Promise<Record<string, string>> {
  const tables: [string, string][] = [
    ['pgbench_accounts', 'aid'],
    ['pgbench_branches', 'bid'],
    ['pgbench_tellers', 'tid'],
    ['pgbench_history', 'tid, bid, aid, delta, mtime'],
  ];
  const out: Record<string, string> = {};
  for (const [table, key] of tables) out[table] = await cluster.tableChecksum(database, table, key);
  return out;
}

/**
 * A copy of the cluster's current WAL segment, in `ws.dir` under its own
 * name, whose page header names another cluster (sandbox clusters share
 * their template's system identifier, so one is forged): what archive-push
 * must refuse.
 */
export async function foreignSegment(ws: Pick<Workspace, 'dir' | 'cluster'>): Promise<string> {
  const [{ file }] = await ws.cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
  const bytes = await readFile(path.join(ws.cluster.dataDir, 'pg_wal', file));
  bytes.writeBigUInt64LE(bytes.readBigUInt64LE(24) + 1n, 24);
  const foreign = path.join(ws.dir, file);
  await writeFile(foreign, bytes);
  await chownToPgUser(foreign);
  return foreign;
}

/** Close the current WAL segment and wait until archive_command has stored it. */
export async function switchAndWaitArchived(cluster: SandboxCluster, timeoutMs = 30_000): Promise<string> {
  const [{ file }] = await cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await cluster.query<{ last: string | null; failed: string; last_failed: string | null }>(
      'SELECT last_archived_wal AS last, failed_count::text AS failed, last_failed_wal AS last_failed FROM pg_stat_archiver',
    );
    if (row.last && row.last >= file && !row.last.endsWith('.history')) return file;
    if (row.last && row.last.endsWith('.history') === false && row.last >= file) return file;
    if (Date.now() > deadline) throw new Error(`WAL ${file} not archived after ${timeoutMs} ms (last ${row.last}, failed ${row.failed} ${row.last_failed})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Poll `probe` until it returns a value (not undefined), or fail after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Wait until a restored server has left recovery (promoted); on timeout, show its log. */
export async function waitPromoted(cluster: Pick<SandboxCluster, 'query' | 'logFile'>, timeoutMs = 30_000): Promise<void> {
  await waitFor('promotion', async () => ((await cluster.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0].r ? undefined : true), timeoutMs).catch(async (error: Error) => {
    const { readFile } = await import('node:fs/promises');
    throw new Error(`${error.message}; server log:\n${(await readFile(cluster.logFile, 'utf8').catch(() => '')).slice(-4000)}`);
  });
}

/**
 * A sandbox sshd's directory is root's: give the PostgreSQL OS user (as
 * whom pgharbor and archive_command run) its own copy of the client key and
 * known_hosts, in `dir`.
 */
export async function sshFilesForPgUser(sshd: { clientKeyFile: string; knownHostsFile: string }, dir: string): Promise<{ keyFile: string; knownHosts: string }> {
  const keyFile = path.join(dir, 'client_key');
  const knownHosts = path.join(dir, 'known_hosts');
  await copyFile(sshd.clientKeyFile, keyFile);
  await copyFile(sshd.knownHostsFile, knownHosts);
  await chownToPgUser(keyFile);
  await chownToPgUser(knownHosts);
  return { keyFile, knownHosts };
}

/**
 * A tablespace "extra" in a PostgreSQL-owned directory `<ws.dir>/space`, holding
 * table "far" with 20000 rows: what the tablespace tests back up and restore.
 */
export async function createTablespaceWithTable(ws: Pick<Workspace, 'dir' | 'cluster'>): Promise<string> {
  const spaceDir = path.join(ws.dir, 'space');
  await mkdir(spaceDir, { mode: 0o700 });
  await chownToPgUser(spaceDir);
  await ws.cluster.query(`CREATE TABLESPACE extra LOCATION '${spaceDir}'`);
  await ws.cluster.query('CREATE TABLE far (id int PRIMARY KEY, note text) TABLESPACE extra');
  await ws.cluster.query(`INSERT INTO far SELECT g, md5(g::text) FROM generate_series(1, 20000) g`);
  return spaceDir;
}

/**
 * Add a second repository to the workspace's server "pg": `prefix` in
 * `bucket` of a sandbox S3 server, named "s3", its credentials read from
 * the environment variables `<env>_KEY` and `<env>_SECRET` (set here).
 */
export async function addS3Repository(ws: Pick<Workspace, 'configFile'>, s3: { endpoint: string; accessKeyId: string; secretAccessKey: string }, options: { bucket: string; prefix: string; env: string }): Promise<void> {
  process.env[`${options.env}_KEY`] = s3.accessKeyId;
  process.env[`${options.env}_SECRET`] = s3.secretAccessKey;
  const posix = '      - { type: posix, path: ./repo }\n';
  const config = await readFile(ws.configFile, 'utf8');
  if (!config.includes(posix)) throw new Error(`${ws.configFile} has no posix repository line to add the S3 one after`);
  const line =
    `      - { type: s3, name: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: ${options.bucket}, prefix: ${options.prefix},` +
    ` access_key_id: { from_env: ${options.env}_KEY }, secret_access_key: { from_env: ${options.env}_SECRET } }\n`;
  await writeFile(ws.configFile, config.replace(posix, posix + line));
}
