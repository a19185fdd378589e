import fs from 'node:fs/promises';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { ReceiverState } from '../hooks.js';
import { ConfigError, HarborError, errorMessage } from '../errors.js';
import { CURRENT_TIMELINE_SQL, queryServerInfo, type ServerInfo } from '../postgres/server-info.js';
import { probeClientTool } from '../postgres/client-tool.js';
import { SpoolArchiver, type PositionInfo } from './receive-wal-spool.js';
import {
  StatusStore,
  claimReceiver,
  processRunning,
  readReceiverStatus,
  runningReceiver,
  streamingSettings,
  type ReceiverStatus,
  type StreamingSettings,
} from './receive-wal-state.js';
import { RESETTABLE, classifyReceiverError, lastError } from './receive-wal-traps.js';

/**
 * `pgharbor receive-wal SERVER`: pg_receivewal through a replication slot
 * into a local spool, and from there into every repository (Barman's
 * streaming archiver). A supervisor restarts pg_receivewal when it dies,
 * and gets out of the traps the seed's DBA had to reset by hand after a
 * recovery (a spool on the old timeline, or ahead of the restored server).
 */

/** The application_name pg_receivewal connects with: name it in synchronous_standby_names. */
export const RECEIVE_WAL_APPLICATION_NAME = 'pgharbor_receive_wal';

export interface ReceiveWalOptions {
  /** Stop (flush, store the .partial, exit) when this aborts: SIGINT/SIGTERM in the CLI. */
  signal: AbortSignal;
  /** pg_receivewal --synchronous; default: the server's synchronous_streaming. */
  synchronous?: boolean;
  /** How often the growing .partial is stored in the repositories (default 3 s). */
  partialIntervalMs?: number;
  /** How often the spool is looked at (default 1 s). */
  sweepIntervalMs?: number;
  /** Longest pause between restarts of a failing pg_receivewal (default 30 s). */
  maxBackoffMs?: number;
}

interface SlotRow {
  slot_type: string;
  active: boolean;
  active_pid: number | null;
  restart_lsn: string | null;
  wal_status: string | null;
}

export async function readSlot(client: pg.Client, slot: string): Promise<SlotRow | undefined> {
  // to_jsonb: wal_status exists from PostgreSQL 13 on.
  const { rows } = await client.query(
    `SELECT slot_type, active, active_pid, restart_lsn::text AS restart_lsn, to_jsonb(s)->>'wal_status' AS wal_status
       FROM pg_replication_slots s WHERE slot_name = $1`,
    [slot],
  );
  return rows[0] as SlotRow | undefined;
}

async function withClient<T>(server: ServerHandle, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await server.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

function notPhysical(server: ServerHandle, slot: string, type: string): HarborError {
  return new HarborError(`replication slot "${slot}" on ${server.name} is a ${type} slot; receive-wal needs a physical one`, {
    hint: `choose another name with slot: in the servers.${server.name} section`,
  });
}

/** Create the physical slot, reserving WAL at once (so that nothing is lost before receive-wal starts). */
async function createSlotWith(client: pg.Client, server: ServerHandle, slot: string): Promise<string | undefined> {
  try {
    const { rows } = await client.query('SELECT (pg_create_physical_replication_slot($1, true)).lsn::text AS lsn', [slot]);
    return rows[0]?.lsn ?? undefined;
  } catch (error) {
    if (!/permission denied|must be superuser|replication role/i.test(errorMessage(error))) throw error;
    // A REPLICATION user without EXECUTE on the function: pg_receivewal creates it over the streaming connection.
    const info = await queryServerInfo(client);
    const { execa } = await import('execa');
    const { conninfo, env } = server.toolConnection({ application_name: RECEIVE_WAL_APPLICATION_NAME });
    const result = await execa(
      server.pgTool('pg_receivewal', info.versionNum),
      ['--create-slot', '--if-not-exists', '--slot', slot, '--dbname', conninfo, '--no-password'],
      { env, stdin: 'ignore', reject: false },
    );
    if (result.exitCode !== 0) throw new HarborError(`creating replication slot "${slot}" on ${server.name} failed: ${String(result.stderr).trim()}`);
    return undefined;
  }
}

/** `receive-wal --create-slot`. */
export async function createReceiveWalSlot(harbor: Harbor, server: ServerHandle): Promise<{ slot: string; created: boolean; restartLsn?: string }> {
  const { slot } = streamingSettings(harbor, server);
  return withClient(server, async (client) => {
    const existing = await readSlot(client, slot);
    if (existing) {
      if (existing.slot_type !== 'physical') throw notPhysical(server, slot, existing.slot_type);
      return { slot, created: false, restartLsn: existing.restart_lsn ?? undefined };
    }
    try {
      return { slot, created: true, restartLsn: await createSlotWith(client, server, slot) };
    } catch (error) {
      if (error instanceof HarborError) throw error;
      throw new HarborError(`creating replication slot "${slot}" on ${server.name} failed: ${errorMessage(error)}`, {
        hint: /max_replication_slots/.test(errorMessage(error)) ? 'raise max_replication_slots in postgresql.conf and restart PostgreSQL' : 'the conninfo user needs REPLICATION (or superuser)',
      });
    }
  });
}

/** `receive-wal --drop-slot`. */
export async function dropReceiveWalSlot(harbor: Harbor, server: ServerHandle): Promise<{ slot: string; dropped: boolean }> {
  const { slot } = streamingSettings(harbor, server);
  return withClient(server, async (client) => {
    const existing = await readSlot(client, slot);
    if (!existing) return { slot, dropped: false };
    if (existing.slot_type !== 'physical') throw notPhysical(server, slot, existing.slot_type);
    if (existing.active) {
      throw new HarborError(`replication slot "${slot}" on ${server.name} is in use (walsender pid ${existing.active_pid})`, {
        hint: `stop the receiver first: pgharbor receive-wal --stop ${server.name}`,
      });
    }
    await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
    return { slot, dropped: true };
  });
}

/** Where the server is, for the reset's restart point and its report. */
async function serverPosition(client: pg.Client, slot: string, info: ServerInfo): Promise<PositionInfo> {
  const { rows } = await client.query(
    `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_flush_lsn() END)::text AS lsn,
            ${CURRENT_TIMELINE_SQL} AS timeline`,
  );
  const slotRow = await readSlot(client, slot);
  return {
    versionNum: info.versionNum,
    walSegmentSize: info.walSegmentSize,
    timeline: rows[0].timeline ?? info.timeline,
    currentLsn: rows[0].lsn ?? undefined,
    slotRestartLsn: slotRow?.restart_lsn ?? null,
  };
}

/** Connect, check that the server is the one the repositories hold, make sure the slot exists. */
async function prepareServer(harbor: Harbor, server: ServerHandle, settings: StreamingSettings): Promise<{ info: ServerInfo; position: PositionInfo }> {
  return withClient(server, async (client) => {
    const info = await queryServerInfo(client);
    for (const repository of await server.repositories()) {
      const identity = await repository.readIdentity();
      if (identity && identity.systemIdentifier !== info.systemIdentifier) {
        throw new ReceiverMisconfigured(
          `server ${server.name} has system identifier ${info.systemIdentifier}, but ${repository.name} (${repository.location}) holds ${identity.systemIdentifier}: receive-wal would stream another cluster's WAL`,
          { hint: 'conninfo points at a different cluster than the one this repository backs up; give each cluster its own server section' },
        );
      }
    }
    // pg_receivewal refuses a server newer than itself, every time: say which program to install and stop,
    // before a slot is created that would hold WAL for a receiver that cannot run.
    const receiver = await probeClientTool(server, 'pg_receivewal', info.versionNum);
    if (!receiver.ok) throw new ReceiverMisconfigured(`receive-wal ${server.name}: ${receiver.detail}`, { hint: receiver.hint });
    const slot = await readSlot(client, settings.slot);
    if (slot && slot.slot_type !== 'physical') throw new ReceiverMisconfigured(notPhysical(server, settings.slot, slot.slot_type).message);
    if (!slot) {
      if (settings.createSlot === 'manual') {
        throw new HarborError(`replication slot "${settings.slot}" does not exist on ${server.name}`, {
          hint: `create it with: pgharbor receive-wal --create-slot ${server.name} (or set create_slot: auto)`,
        });
      }
      const lsn = await createSlotWith(client, server, settings.slot);
      harbor.logger.info(`receive-wal ${server.name}: created replication slot "${settings.slot}"${lsn ? ` at ${lsn}` : ''}`);
    }
    return { info, position: await serverPosition(client, settings.slot, info) };
  });
}

/** Misconfiguration that retrying cannot fix: receive-wal stops. */
class ReceiverMisconfigured extends HarborError {}

interface ReceiverRun {
  exitCode?: number;
  signal?: string;
  output: string;
  streamed: boolean;
  seconds: number;
}

/**
 * Run receive-wal until `options.signal` aborts. Resolves with the final
 * status once pg_receivewal has stopped and the .partial is stored.
 */
export async function runReceiveWal(harbor: Harbor, server: ServerHandle, options: ReceiveWalOptions): Promise<ReceiverStatus> {
  const settings = streamingSettings(harbor, server);
  if (!settings.enabled) {
    throw new ConfigError(
      `server ${server.name} does not archive by streaming (streaming_archiver is off)`,
      `set streaming_archiver: true in the servers.${server.name} section of ${harbor.config.filepath}`,
    );
  }
  const synchronous = options.synchronous ?? settings.synchronous;
  const log = harbor.logger;
  const release = await claimReceiver(settings.stateDir, server.name);
  const { signal } = options;
  const previous = readReceiverStatus(settings.stateDir);
  const now = new Date().toISOString();
  const store = new StatusStore(settings.stateDir, {
    pid: process.pid,
    state: 'starting',
    since: now,
    updatedAt: now,
    startedAt: now,
    spoolDir: settings.spoolDir,
    slot: settings.slot,
    synchronous,
    lastSegment: previous?.lastSegment,
    lastPartial: previous?.lastPartial,
    ownPartials: previous?.ownPartials ?? [],
    lastReset: previous?.lastReset,
  });
  const { status } = store;
  const archiver = new SpoolArchiver(harbor, server, settings.spoolDir, store, options.partialIntervalMs);

  const setState = async (state: ReceiverState, detail?: string): Promise<void> => {
    const changed = state !== status.state;
    if (!changed && detail === status.detail) return;
    status.state = state;
    status.detail = detail;
    if (changed) status.since = new Date().toISOString();
    await store.save().catch((error) => log.warn(`receive-wal ${server.name}: cannot write its status file: ${errorMessage(error)}`));
    if (changed) await harbor.hooks.archive.receiverState.promise(server.name, state, detail).catch((error) => log.warn(`receive-wal ${server.name}: a receiverState hook failed: ${errorMessage(error)}`));
  };

  let sweeping = true;
  let sweeper: Promise<void> = Promise.resolve();
  try {
    await fs.mkdir(settings.spoolDir, { recursive: true, mode: 0o700 });
    await endOrphan(previous, log, server.name);
    await store.save();
    await harbor.hooks.archive.receiverState.promise(server.name, 'starting', undefined).catch(() => {});
    log.info(`receive-wal ${server.name}: slot "${settings.slot}", spool ${settings.spoolDir}${synchronous ? ', synchronous' : ''}`);

    sweeper = (async () => {
      while (sweeping) {
        await archiver.sweep().catch((error) => log.warn(`receive-wal ${server.name}: ${errorMessage(error)}`));
        await sleep(options.sweepIntervalMs ?? 1000, undefined, { signal }).catch(() => {});
        if (signal.aborted) return;
      }
    })();

    const maxBackoff = options.maxBackoffMs ?? 30_000;
    let backoff = 1000;
    let resetsInARow = 0;
    let lastTrap: string | undefined;
    while (!signal.aborted) {
      let prepared: Awaited<ReturnType<typeof prepareServer>>;
      try {
        prepared = await prepareServer(harbor, server, settings);
      } catch (error) {
        if (error instanceof ReceiverMisconfigured) throw error;
        await setState('failed', errorMessage(error));
        log.error(`receive-wal ${server.name}: ${errorMessage(error)}; retrying in ${backoff / 1000} s`);
        await sleep(backoff, undefined, { signal }).catch(() => {});
        backoff = Math.min(backoff * 2, maxBackoff);
        continue;
      }
      const marker = await archiver.prepareStart(prepared.info.walSegmentSize);
      if (marker) log.info(`receive-wal ${server.name}: continuing after the last archived segment (start marker ${marker})`);

      const run = await runPgReceivewal(harbor, server, settings, prepared.info.versionNum, synchronous, status, store, signal, archiver, setState);
      status.receiverPid = undefined;
      if (signal.aborted) break;
      if (run.streamed) {
        // It streamed: whatever was reset before worked.
        resetsInARow = 0;
        lastTrap = undefined;
        if (run.seconds > 10) backoff = 1000;
      }

      const trap = classifyReceiverError(run.output);
      const reason = trap?.message ?? lastError(run.output) ?? `pg_receivewal exited with ${run.signal ?? `code ${run.exitCode}`}`;
      if (trap && RESETTABLE.includes(trap.kind) && resetsInARow < 3) {
        resetsInARow++;
        log.warn(`receive-wal ${server.name}: pg_receivewal cannot continue from the spool: ${trap.message}`);
        log.warn(`receive-wal ${server.name}: resetting the spool (automatic; the same as pgharbor receive-wal --reset ${server.name})`);
        const actions = await archiver.reset(`automatic reset: ${trap.message}`, prepared.position, trap, { fromForkPoint: lastTrap !== 'forked' });
        for (const action of actions) log.warn(`receive-wal ${server.name}: reset: ${action}`);
        lastTrap = trap.kind;
        continue;
      }
      lastTrap = trap?.kind;
      if (trap && RESETTABLE.includes(trap.kind)) {
        await setState('failed', `${reason} (automatic resets did not help)`);
        log.error(`receive-wal ${server.name}: ${reason}; automatic resets did not help: look at the server and the spool ${settings.spoolDir}, then run pgharbor receive-wal --reset ${server.name}`);
      } else {
        await setState('failed', reason);
        log.error(`receive-wal ${server.name}: pg_receivewal stopped: ${reason}; restarting in ${backoff / 1000} s`);
      }
      await sleep(backoff, undefined, { signal }).catch(() => {});
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  } finally {
    sweeping = false;
    await sweeper;
    // The last words: everything pg_receivewal flushed reaches the repositories.
    await archiver.sweep({ final: true }).catch((error) => log.error(`receive-wal ${server.name}: storing the last WAL failed: ${errorMessage(error)}`));
    status.receiverPid = undefined;
    await setState('stopped', status.lastPartial ? `last stored ${status.lastPartial.name}` : undefined);
    await release();
  }
  log.info(`receive-wal ${server.name}: stopped`);
  return status;
}

/** A pg_receivewal left behind by a receive-wal that was killed still holds the slot: end it. */
async function endOrphan(previous: ReceiverStatus | undefined, log: Harbor['logger'], server: string): Promise<void> {
  const pid = previous?.receiverPid;
  if (!pid || !processRunning(pid, 'pg_receivewal', previous.spoolDir)) return;
  log.warn(`receive-wal ${server}: ending pg_receivewal pid ${pid}, left running by a receive-wal that did not stop cleanly`);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && processRunning(pid, 'pg_receivewal'); i++) await sleep(100);
}

async function runPgReceivewal(
  harbor: Harbor,
  server: ServerHandle,
  settings: StreamingSettings,
  versionNum: number,
  synchronous: boolean,
  status: ReceiverStatus,
  store: StatusStore,
  signal: AbortSignal,
  archiver: SpoolArchiver,
  setState: (state: ReceiverState, detail?: string) => Promise<void>,
): Promise<ReceiverRun> {
  const log = harbor.logger;
  const tool = server.pgTool('pg_receivewal', versionNum); // probed by the caller
  // The password goes into pg_receivewal's environment, never its command line (ps shows that to everyone).
  const { conninfo, env } = server.toolConnection({ application_name: RECEIVE_WAL_APPLICATION_NAME });
  // --no-loop: pg_receivewal would otherwise retry on its own every 5 s, hiding from us that it
  // cannot continue (and why); the supervisor restarts it with backoff, or resets the spool.
  const args = ['--dbname', conninfo, '--slot', settings.slot, '--directory', settings.spoolDir, '--no-loop', '--no-password', '--verbose'];
  if (synchronous) args.push('--synchronous');
  const started = Date.now();
  // Loaded here, not at the top: harbor.ts taps our checks, and archive-push's lean bundle must not load execa.
  const { execa } = await import('execa');
  const child = execa(tool, args, { env, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: false, reject: false });
  status.receiverPid = child.pid;

  const tail: string[] = [];
  let streamed = false;
  let streamingTimer: NodeJS.Timeout | undefined;
  const lines = readline.createInterface({ input: child.stderr! });
  lines.on('line', (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    log.info(`receive-wal ${server.name}: ${line}`);
    let match: RegExpExecArray | null;
    if ((match = /starting log streaming at (\S+) \(timeline (\d+)\)/.exec(line))) {
      status.startLsn = match[1];
      status.timeline = Number(match[2]);
      const detail = `from ${match[1]} on timeline ${match[2]}`;
      // Streaming is confirmed when pg_receivewal is still at it a moment later (a refused start exits at once).
      clearTimeout(streamingTimer);
      streamingTimer = setTimeout(() => {
        streamed = true;
        void setState('streaming', detail);
      }, 1500);
    } else if (!streamed && (match = /finished segment at (\S+) \(timeline (\d+)\)/.exec(line))) {
      // A finished segment proves streaming too.
      clearTimeout(streamingTimer);
      streamed = true;
      status.timeline = Number(match[2]);
      void setState('streaming', `on timeline ${match[2]}, at ${match[1]}`);
      void archiver.sweep().catch(() => {});
    } else if ((match = /switched to timeline (\d+) at (\S+)/.exec(line))) {
      status.timeline = Number(match[1]);
      void setState('streaming', `timeline ${match[1]} from ${match[2]}`);
    } else if (/finished segment at/.test(line)) {
      void archiver.sweep().catch(() => {});
    }
  });
  // Only now: the line reader is attached before anything awaits, so pg_receivewal's first words are never missed.
  await store.save().catch(() => {});

  const stop = () => {
    child.kill('SIGTERM'); // pg_receivewal flushes and closes the .partial
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  };
  signal.addEventListener('abort', stop, { once: true });
  const result = await child;
  signal.removeEventListener('abort', stop);
  clearTimeout(streamingTimer);
  lines.close(); // stderr has ended, so every line is in
  if (result.failed && result.exitCode === undefined && !result.signal) {
    log.error(`receive-wal ${server.name}: cannot run ${tool}: ${result.shortMessage ?? result.message}`);
    tail.push(`cannot run ${tool}: ${result.message}`);
  }
  return { exitCode: result.exitCode, signal: result.signal, output: tail.join('\n'), streamed, seconds: (Date.now() - started) / 1000 };
}

/** `receive-wal --reset`: the same reset the supervisor does on its own, while no receiver runs. */
export async function resetReceiveWal(harbor: Harbor, server: ServerHandle): Promise<{ actions: string[]; spoolDir: string }> {
  const settings = streamingSettings(harbor, server);
  const running = runningReceiver(settings.stateDir);
  if (running) {
    throw new HarborError(`receive-wal for server ${server.name} is running (pid ${running}); it resets the spool itself when it has to`, {
      hint: `to reset by hand, stop it first: pgharbor receive-wal --stop ${server.name}`,
    });
  }
  const release = await claimReceiver(settings.stateDir, server.name);
  try {
    const previous = readReceiverStatus(settings.stateDir);
    const now = new Date().toISOString();
    const store = new StatusStore(settings.stateDir, {
      ...(previous ?? { state: 'stopped', since: now, startedAt: now, spoolDir: settings.spoolDir, slot: settings.slot, synchronous: settings.synchronous }),
      pid: process.pid,
      receiverPid: undefined,
      updatedAt: now,
    });
    const position = await withClient(server, async (client) => serverPosition(client, settings.slot, await queryServerInfo(client))).catch((error) => {
      throw new HarborError(`receive-wal --reset needs the server to say where it is: ${errorMessage(error)}`, { hint: 'check conninfo with: pgharbor check ' + server.name });
    });
    const archiver = new SpoolArchiver(harbor, server, settings.spoolDir, store);
    const actions = await archiver.reset('requested with receive-wal --reset', position);
    return { actions, spoolDir: settings.spoolDir };
  } finally {
    await release();
  }
}

/** `receive-wal --stop`: SIGTERM to the running receive-wal, then wait until it has stored the .partial and exited. */
export async function stopReceiveWal(harbor: Harbor, server: ServerHandle, timeoutMs = 60_000): Promise<{ pid?: number; status?: ReceiverStatus }> {
  const settings = streamingSettings(harbor, server);
  const pid = runningReceiver(settings.stateDir);
  if (!pid) return {};
  try {
    process.kill(pid, 'SIGTERM');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return {};
    throw new HarborError(`cannot signal receive-wal for ${server.name} (pid ${pid}): ${errorMessage(error)}`, {
      hint: 'run receive-wal --stop as the OS user that runs receive-wal (e.g. postgres)',
    });
  }
  const deadline = Date.now() + timeoutMs;
  while (processRunning(pid, 'receive-wal')) {
    if (Date.now() > deadline) throw new HarborError(`receive-wal for ${server.name} (pid ${pid}) did not stop within ${timeoutMs / 1000} s`, { hint: `look at its log; kill ${pid} ends it for good` });
    await sleep(100);
  }
  return { pid, status: readReceiverStatus(settings.stateDir) };
}

/** What `check` and `status` show: whether receive-wal runs, and its last status. */
export function receiveWalStatus(harbor: Harbor, server: ServerHandle): { running: boolean; pid?: number; status?: ReceiverStatus; settings: StreamingSettings } {
  const settings = streamingSettings(harbor, server);
  const pid = runningReceiver(settings.stateDir);
  return { running: Boolean(pid), pid, status: readReceiverStatus(settings.stateDir), settings };
}
