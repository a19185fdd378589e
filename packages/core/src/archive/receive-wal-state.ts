import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { ReceiverState } from '../hooks.js';
import type { StreamingServerOptions } from '../config/streaming-schema.js';
import { HarborError } from '../errors.js';
import { BusyLockError, isAlive } from '../lock/lock.js';
import { acquireLocalLock, localLockHolder } from '../lock/local-lock-store.js';

/** What receive-wal needs from the config, with defaults applied. */
export interface StreamingSettings {
  enabled: boolean;
  slot: string;
  synchronous: boolean;
  createSlot: 'auto' | 'manual';
  /** Where pg_receivewal writes (the spool). */
  spoolDir: string;
  /** <state_dir>/<server>: pid and status files. */
  stateDir: string;
}

export function streamingSettings(harbor: Harbor, server: ServerHandle): StreamingSettings {
  const config = server.config as StreamingServerOptions;
  const stateDir = path.join(harbor.stateDir(), server.name);
  return {
    enabled: config.streaming_archiver ?? false,
    slot: config.slot ?? 'pgharbor',
    synchronous: config.synchronous_streaming ?? false,
    createSlot: config.create_slot ?? 'auto',
    spoolDir: config.wal_spool_dir ? path.resolve(server.configDir, config.wal_spool_dir) : path.join(stateDir, 'streaming'),
    stateDir,
  };
}

/**
 * The receiver's status, written by the running receive-wal on every
 * change and kept after it stops: `check`, `--stop` and `--reset` read it,
 * and the next start continues from `lastSegment`.
 */
export interface ReceiverStatus {
  /** The receive-wal process (the supervisor). */
  pid: number;
  /** pg_receivewal, while it runs. */
  receiverPid?: number;
  state: ReceiverState;
  detail?: string;
  /** When `state` began. */
  since: string;
  updatedAt: string;
  startedAt: string;
  spoolDir: string;
  slot: string;
  synchronous: boolean;
  timeline?: number;
  /** Where the current pg_receivewal started streaming. */
  startLsn?: string;
  /** The last completed segment stored in every repository. */
  lastSegment?: string;
  /** The .partial last stored, and when. */
  /** The last .partial stored; writtenAt: the spool file's modification time the stored copy holds (absent for a retired one). */
  lastPartial?: { name: string; pushedAt: string; writtenAt?: string };
  /** .partial names this spool has stored since the last reset (their repository copies are ours to replace). */
  ownPartials?: string[];
  /** The last reset, automatic or by --reset. */
  lastReset?: { at: string; reason: string; movedTo?: string; actions: string[] };
}

const statusFile = (stateDir: string) => path.join(stateDir, 'receive-wal.json');

export function readReceiverStatus(stateDir: string): ReceiverStatus | undefined {
  try {
    return JSON.parse(readFileSync(statusFile(stateDir), 'utf8')) as ReceiverStatus;
  } catch {
    return undefined;
  }
}

let writes = 0;

export async function writeReceiverStatus(stateDir: string, status: ReceiverStatus): Promise<void> {
  const file = statusFile(stateDir);
  const temporary = `${file}.${process.pid}.${++writes}.tmp`;
  await fs.writeFile(temporary, JSON.stringify({ ...status, updatedAt: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600 });
  await fs.rename(temporary, file);
}

/** Whether `pid` is a live process whose command line mentions every word (guards against a recycled pid). */
export function processRunning(pid: number | undefined, ...words: string[]): boolean {
  if (!pid || pid <= 0 || !isAlive(pid)) return false;
  try {
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return words.every((word) => commandLine.includes(word));
  } catch {
    return true; // no /proc: trust the signal test
  }
}

/** The pid of the running receive-wal of this server, if one runs (the holder of <state_dir>/<server>/receive-wal.lock). */
export function runningReceiver(stateDir: string): number | undefined {
  const holder = localLockHolder(stateDir, 'receive-wal');
  return holder && processRunning(holder.pid, 'receive-wal') ? holder.pid : undefined;
}

/** Take the server's receive-wal lock: one receive-wal per server. Returns the release function. */
export async function claimReceiver(stateDir: string, server: string): Promise<() => Promise<void>> {
  let lock;
  try {
    lock = await acquireLocalLock(stateDir, 'receive-wal', 'receive-wal', {
      // A pid recycled by an unrelated process is no receive-wal (the check the pid file had).
      ownerGone: (owner) => !processRunning(owner.pid, 'receive-wal'),
    });
  } catch (error) {
    if (!(error instanceof BusyLockError)) throw error;
    throw new HarborError(`receive-wal for server ${server} is already running (pid ${error.holder.pid})`, {
      hint: `stop it first with: pgharbor receive-wal --stop ${server}`,
    });
  }
  return async () => {
    await lock.release();
  };
}

/** The in-memory status of a receiver (running, or being reset) and its file, written one save at a time. */
export class StatusStore {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly stateDir: string,
    readonly status: ReceiverStatus,
  ) {}

  save(): Promise<void> {
    const next = this.chain.then(async () => {
      await fs.mkdir(this.stateDir, { recursive: true, mode: 0o700 });
      await writeReceiverStatus(this.stateDir, this.status);
    });
    this.chain = next.catch(() => {});
    return next;
  }
}
