import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { writeAutoConf, type Settings } from './conf.js';
import { freePort } from './free-port.js';
import { pgBinDir, pgClientBinDir, pgVersion } from './pg-bin.js';
import { pgBinForMajor } from './pg-majors.js';
import { asPgUser, chownToPgUser, pgOsUser, type OsUser } from './pg-os-user.js';
import { track, untrack } from './reaper.js';
import { ensureTemplate } from './template.js';

export interface SandboxClusterOptions {
  /**
   * Server bin directory (pgBinForMajor(17) for another major). Default: env PGHARBOR_PG_BIN or
   * /usr/lib/postgresql/15/bin; for startExistingCluster, the major the data directory's PG_VERSION names.
   */
  pgBin?: string;
  settings?: Settings;
  /** Keep fsync/synchronous_commit on (default off: throwaway clusters don't need durability). */
  durable?: boolean;
  /**
   * Parent directory for the sandbox's own directory (default env PGHARBOR_SANDBOX_DIR, else
   * os.tmpdir()). On disk-backed /tmp, creating the ~1000 files of a data dir dominates start-up
   * time; pointing this at a tmpfs such as /dev/shm makes createCluster several times faster.
   */
  rootDir?: string;
}

export interface SandboxCluster {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly host: string;
  readonly user: 'postgres';
  readonly conninfo: string;
  readonly tcpConninfo: string;
  readonly pgBin: string;
  /** The server's major version (13 ... 18). */
  readonly major: number;
  /** Where pgbench and psql come from: pgBin when it has them, else Debian's 15 (the npm servers ship none). */
  readonly clientBin: string;
  readonly osUser: OsUser;
  /** Server log (stderr of postgres); kept across restarts. */
  readonly logFile: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  pgbench(args: string[]): Promise<void>;
  tableChecksum(database: string, table: string, orderBy: string): Promise<string>;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
  isRunning(): boolean;
}

// A restored cluster may have to replay a lot of WAL before it accepts connections.
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const MAX_PORT_ATTEMPTS = 5;

async function tail(file: string, bytes = 4096): Promise<string> {
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const buf = Buffer.alloc(Math.min(size, bytes));
      await fh.read(buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8').split('\n').slice(-30).join('\n');
    } finally {
      await fh.close();
    }
  } catch {
    return '(no server log)';
  }
}

/** Directory owned by the OS user, mode 0700, as postgres requires for its socket dir. */
async function ownedDir(parent: string, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(parent, prefix));
  await chmod(dir, 0o700);
  const { uid, gid } = pgOsUser();
  if (process.getuid?.() === 0) await chown(dir, uid, gid);
  return dir;
}

class Cluster implements SandboxCluster {
  readonly host: string;
  readonly user = 'postgres' as const;
  readonly osUser = pgOsUser();
  readonly logFile: string;
  readonly clientBin: string;
  port: number;
  private proc: ChildProcess | undefined;
  private procExit: Promise<void> = Promise.resolve();
  private exited = true;

  constructor(
    readonly dataDir: string,
    readonly socketDir: string,
    readonly pgBin: string,
    readonly major: number,
    /** Sandbox-owned directories removed by destroy(); never includes a foreign dataDir. */
    private readonly ownedDirs: string[],
    logDir: string,
    port: number | undefined,
    private readonly fixedPort: boolean,
  ) {
    this.host = socketDir;
    this.port = port ?? 0;
    this.logFile = path.join(logDir, 'postgres.log');
    this.clientBin = pgClientBinDir(pgBin);
  }

  get conninfo(): string {
    return `host=${this.socketDir} port=${this.port} user=postgres dbname=postgres`;
  }
  get tcpConninfo(): string {
    return `host=127.0.0.1 port=${this.port} user=postgres dbname=postgres`;
  }

  isRunning(): boolean {
    return !!this.proc && !this.exited;
  }

  async start(): Promise<void> {
    if (this.isRunning()) return;
    for (let attempt = 1; ; attempt++) {
      // Keep the port across restarts so conninfo stays valid; pick a new one only if it's taken.
      if (!this.fixedPort && (this.port === 0 || attempt > 1)) {
        this.port = await freePort();
        await writeAutoConf(this.dataDir, { port: this.port });
      }
      try {
        return await this.spawnAndWait();
      } catch (e) {
        // Another process may have taken the "free" port between probing and binding.
        const portTaken = /could not bind|Address already in use/i.test((e as Error).message);
        if (this.fixedPort || !portTaken || attempt >= MAX_PORT_ATTEMPTS) throw e;
      }
    }
  }

  private async spawnAndWait(): Promise<void> {
    // Direct spawn instead of pg_ctl: pg_ctl polls at 100 ms, we poll postmaster.pid at 10 ms.
    // node's spawn rather than execa: a daemon needs a raw fd for stdio (no pumping through this
    // process) and execa's typings reject a non-literal fd number.
    const fd = openSync(this.logFile, 'a');
    const as = asPgUser();
    let proc: ChildProcess;
    try {
      proc = spawn(path.join(this.pgBin, 'postgres'), ['-D', this.dataDir], {
        ...as,
        env: { ...process.env, ...as.env },
        stdio: ['ignore', fd, fd],
        detached: false,
      });
    } finally {
      closeSync(fd); // the child holds its own copy
    }
    const pid = proc.pid;
    const exited = new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.once('error', () => resolve()); // spawn failure: no 'exit' follows
    }).then(() => {
      this.exited = true;
      if (pid !== undefined) untrack(pid);
    });
    this.proc = proc;
    this.procExit = exited;
    this.exited = false;
    if (pid === undefined) {
      await exited;
      throw new Error(`failed to spawn postgres for ${this.dataDir}\n${await tail(this.logFile)}`);
    }
    track(pid);

    const deadline = Date.now() + START_TIMEOUT_MS;
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    while (!this.exited) {
      // Same readiness test as pg_ctl: line 8 of postmaster.pid turns "ready" (or "standby"
      // for a hot standby) once connections are accepted, and line 1 must be our child.
      const lines = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n');
      if (Number(lines[0]) === pid && /^(ready|standby)\b/.test(lines[7]?.trim() ?? '')) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(
          `postgres on ${this.dataDir} not ready after ${START_TIMEOUT_MS} ms; log ${this.logFile}:\n${await tail(this.logFile)}`,
        );
      }
      await sleep(10);
    }
    throw new Error(
      `postgres on ${this.dataDir} exited during startup; log ${this.logFile}:\n${await tail(this.logFile)}`,
    );
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || this.exited) return;
    const exited = this.procExit;
    // SIGINT = fast shutdown; escalate to immediate (SIGQUIT), then SIGKILL if it hangs.
    const escalation: [NodeJS.Signals, number][] = [
      ['SIGINT', STOP_TIMEOUT_MS],
      ['SIGQUIT', 5_000],
      ['SIGKILL', 5_000],
    ];
    for (const [signal, ms] of escalation) {
      proc.kill(signal);
      const timer = sleep(ms, 'timeout' as const, { ref: false });
      if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'exited') break;
    }
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    for (const dir of this.ownedDirs) await rm(dir, { recursive: true, force: true });
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[], database = 'postgres'): Promise<T[]> {
    // One short-lived connection per call: a pool's idle clients would emit unhandled 'error'
    // events when the cluster is stopped underneath them.
    const client = new pg.Client({ host: this.socketDir, port: this.port, user: 'postgres', database });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  async pgbench(args: string[]): Promise<void> {
    // Connection defaults go through the environment so explicit args can still override them.
    const opts = asPgUser();
    await execa(path.join(this.clientBin, 'pgbench'), args, {
      ...opts,
      env: { ...opts.env, PGHOST: this.socketDir, PGPORT: String(this.port), PGUSER: 'postgres', PGDATABASE: 'postgres' },
    });
  }

  async tableChecksum(database: string, table: string, orderBy: string): Promise<string> {
    // `table` and `orderBy` are SQL fragments (test helper, not for untrusted input).
    const [row] = await this.query<{ md5: string }>(
      `SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY ${orderBy}), '')) AS md5 FROM ${table} t`,
      [],
      database,
    );
    return row.md5;
  }
}

/** Unix socket paths are limited to ~107 bytes, so a deep rootDir gets its socket dir in /tmp. */
async function socketDirFor(root: string): Promise<string> {
  return ownedDir(root.length > 60 ? '/tmp' : root, root.length > 60 ? 'pgharbor-sock-' : 's');
}

/** Settings that make a data directory reachable only through this sandbox's port and socket. */
function networkSettings(socketDir: string): Settings {
  return {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    logging_collector: false, // we capture stderr into <root>/postgres.log ourselves
  };
}

/** Create the sandbox's own dir + socket dir, let `prepare` produce a configured data dir, start. */
async function boot(
  options: SandboxClusterOptions & { port?: number },
  prefix: string,
  prepare: (root: string, socketDir: string, bin: string) => Promise<string>,
): Promise<SandboxCluster> {
  const bin = pgBinDir(options.pgBin);
  const { major } = await pgVersion(bin); // also proves the OS user can run it, before anything is created
  const root = await ownedDir(options.rootDir ?? process.env.PGHARBOR_SANDBOX_DIR ?? os.tmpdir(), prefix);
  const owned = [root];
  try {
    const socketDir = await socketDirFor(root);
    owned.push(socketDir);
    const dataDir = await prepare(root, socketDir, bin);
    const cluster = new Cluster(dataDir, socketDir, bin, major, owned, root, options.port, options.port !== undefined);
    await cluster.start();
    return cluster;
  } catch (e) {
    for (const dir of owned) await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Copy the cached template into a fresh directory, configure and start it. */
export function createCluster(options: SandboxClusterOptions = {}): Promise<SandboxCluster> {
  return boot({ ...options, port: undefined }, 'pgharbor-sandbox-', async (root, socketDir, bin) => {
    const dataDir = path.join(root, 'data');
    await execa('cp', ['-a', await ensureTemplate(bin), dataDir]); // -a keeps owner and 0700
    const durable = options.durable ?? false;
    await writeAutoConf(dataDir, {
      ...networkSettings(socketDir),
      wal_level: 'replica',
      max_wal_senders: 10,
      max_replication_slots: 10,
      fsync: durable,
      synchronous_commit: durable,
      ...options.settings,
    });
    return dataDir;
  });
}

/**
 * The server for a data directory's PG_VERSION: the default one (PGHARBOR_PG_BIN) when it is of
 * that major, else pgBinForMajor's; undefined (the default) when the file is missing or odd.
 */
async function binForDataDir(dataDir: string): Promise<string | undefined> {
  let major: number;
  try {
    major = Number(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim());
  } catch {
    return undefined; // prepare() says it is not a data directory
  }
  if (!Number.isInteger(major) || major < 10) return undefined;
  if ((await pgVersion(pgBinDir())).major === major) return pgBinDir();
  return pgBinForMajor(major);
}

/**
 * Start a server on a data directory the sandbox did not create (e.g. one pgharbor restored).
 * destroy() stops it and removes only the sandbox's socket/log dir, never dataDir.
 */
export async function startExistingCluster(
  dataDir: string,
  options: SandboxClusterOptions & { port?: number } = {},
): Promise<SandboxCluster> {
  dataDir = path.resolve(dataDir);
  // A restored data directory is started by its own major's server (another major's refuses it).
  const pgBin = options.pgBin ?? (await binForDataDir(dataDir));
  return boot({ ...options, pgBin }, 'pgharbor-sandbox-ext-', async (_root, socketDir) => {
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) throw new Error(`${dataDir} is not a PostgreSQL data directory`);
    // The restored postgresql.auto.conf may carry the source cluster's port and socket dir.
    // Other settings (wal_level etc.) are left as restored unless overridden via options.
    await writeAutoConf(dataDir, {
      ...networkSettings(socketDir),
      ...(options.durable === undefined ? {} : { fsync: options.durable, synchronous_commit: options.durable }),
      ...options.settings,
      ...(options.port === undefined ? {} : { port: options.port }),
    });
    await chownToPgUser(dataDir);
    await chmod(dataDir, 0o700); // postgres refuses group/world-accessible data directories
    return dataDir;
  });
}
