import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgOsUser, startExistingCluster, type SandboxCluster } from '@pgharbor/sandbox';
import { CLI, createWorkspace, type Workspace } from './harness.js';

/**
 * WAL archived by streaming alone (no archive_command): pg_receivewal under
 * `pgharbor receive-wal`, run as the postgres OS user like in production.
 */

type Queryable = { query: Workspace['cluster']['query'] };

const ids = async (cluster: Queryable) => (await cluster.query<{ id: number }>('SELECT id FROM t1 ORDER BY id')).map((r) => r.id);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000, onTimeout?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${onTimeout ? `\n${onTimeout()}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function waitPromoted(cluster: Queryable & { logFile: string }): Promise<void> {
  await waitFor('promotion', async () => !(await cluster.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0].r).catch(async (error: Error) => {
    throw new Error(`${error.message}; server log:\n${(await readFile(cluster.logFile, 'utf8')).slice(-4000)}`);
  });
}

/** `pgharbor receive-wal pg` in the background, as the postgres OS user. */
function startReceiver(ws: Workspace, args: string[] = []): ResultPromise & { output(): string } {
  const user = pgOsUser();
  const asPg = process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {};
  const child = execa(process.execPath, [CLI, '--config', ws.configFile, 'receive-wal', 'pg', ...args], {
    ...asPg,
    env: { HOME: os.tmpdir() },
    reject: false,
    stdin: 'ignore',
    all: true,
    buffer: true,
  });
  let text = '';
  child.all?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return Object.assign(child, { output: () => text });
}

interface ReceiverStatusFile {
  state: string;
  timeline?: number;
  lastSegment?: string;
  lastPartial?: { name: string; pushedAt: string; writtenAt?: string };
  lastReset?: { reason: string; movedTo?: string; actions: string[] };
}

const statusOf = async (ws: Workspace) => JSON.parse(await readFile(path.join(ws.dir, 'state', 'pg', 'receive-wal.json'), 'utf8')) as ReceiverStatusFile;

/** Server "pg" with streaming_archiver on and its state (spool, pid file) inside the workspace. */
async function streamingWorkspace(options: { settings?: Record<string, string>; extra?: string[] } = {}): Promise<Workspace> {
  const ws = await createWorkspace({ asPgUser: true, cluster: { settings: options.settings }, serverExtra: ['streaming_archiver: true', ...(options.extra ?? [])] });
  await writeFile(ws.configFile, `state_dir: ./state\n${await readFile(ws.configFile, 'utf8')}`);
  return ws;
}

const archived = async (ws: Workspace, name: string) =>
  (await readdir(path.join(ws.repoDir, 'pg', 'wal', name.slice(0, 16))).catch(() => [] as string[])).some((f) => f.startsWith(`${name}-`));

const receiverRow = async (cluster: Queryable) =>
  (await cluster.query<{ state: string; sync_state: string; write_lsn: string }>(
    `SELECT state, sync_state, write_lsn::text AS write_lsn FROM pg_stat_replication WHERE application_name = 'pgharbor_receive_wal'`,
  ))[0];

/** Commit rows that only the growing .partial holds, and wait until receive-wal has stored that .partial. */
async function writeIntoPartial(ws: Workspace, cluster: Queryable, from: number, to: number, log: () => string): Promise<void> {
  await cluster.query(`INSERT INTO t1 SELECT generate_series(${from}, ${to})`);
  const [{ lsn }] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  await waitFor('pg_receivewal to receive the last rows', async () => {
    const [{ ok }] = await cluster.query<{ ok: boolean }>(
      `SELECT coalesce(bool_or(write_lsn >= $1::pg_lsn), false) AS ok FROM pg_stat_replication WHERE application_name = 'pgharbor_receive_wal'`,
      [lsn],
    );
    return ok;
  }, 60_000, log);
  // When pg_receivewal last wrote the spool's .partial: the rows are in it by now. Not the time
  // pg_stat_replication showed them (it reports every 10 s): a store between the write and that
  // report was the last one, nothing changing afterwards, and waiting for a later one timed out.
  const spool = path.join(ws.dir, 'state', 'pg', 'streaming');
  const partials = (await readdir(spool)).filter((f) => f.endsWith('.partial'));
  const written = Math.max(0, ...(await Promise.all(partials.map(async (f) => (await stat(path.join(spool, f))).mtimeMs))));
  await waitFor('the .partial to be stored', async () => {
    const stored = (await statusOf(ws)).lastPartial?.writtenAt;
    return stored && Date.parse(stored) >= Math.floor(written);
  }, 60_000, () => `${log()}\nstatus: ${JSON.stringify(readFileSync(path.join(ws.dir, 'state', 'pg', 'receive-wal.json'), 'utf8'))}`);
}

describe('receive-wal: WAL from streaming alone is enough for point-in-time recovery', () => {
  let ws: Workspace;
  let promoted: SandboxCluster | undefined;
  const receivers: ResultPromise[] = [];

  beforeAll(async () => {
    ws = await streamingWorkspace();
  });
  afterAll(async () => {
    for (const r of receivers) r.kill('SIGKILL');
    await promoted?.destroy().catch(() => {});
    await ws?.cleanup();
  });

  it('--create-slot creates a physical slot that reserves WAL, and says so when it exists', async () => {
    const created = await ws.run(['receive-wal', '--create-slot', 'pg']);
    expect(created.stderr).toBe('');
    expect(created.exitCode).toBe(0);
    expect(created.stdout).toContain("Replication slot 'pgharbor' created");
    const [slot] = await ws.cluster.query<{ slot_type: string; restart_lsn: string | null }>(`SELECT slot_type, restart_lsn::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgharbor'`);
    expect(slot.slot_type).toBe('physical');
    expect(slot.restart_lsn).not.toBeNull();
    const again = await ws.run(['receive-wal', '--create-slot', 'pg']);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain('already exists');
  });

  it('archives completed segments and the last .partial; a restore of latest replays every committed row', async () => {
    const receiver = startReceiver(ws);
    receivers.push(receiver);
    await waitFor('receive-wal to stream', async () => (await receiverRow(ws.cluster))?.state === 'streaming', 30_000, receiver.output);

    const backup = await ws.run(['backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    await ws.cluster.query('CREATE TABLE t1 (id int PRIMARY KEY)');
    await ws.cluster.query('INSERT INTO t1 SELECT generate_series(1, 100)');
    await ws.cluster.query(`SELECT pg_create_restore_point('before_101')`);
    const [{ file: first }] = await ws.cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
    await ws.cluster.query('INSERT INTO t1 SELECT generate_series(101, 120)');
    const [{ file: second }] = await ws.cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
    await waitFor(`${first} and ${second} in the repository`, async () => (await archived(ws, first)) && (await archived(ws, second)), 30_000, receiver.output);

    // Rows 121..150 are only in the segment being written.
    await writeIntoPartial(ws, ws.cluster, 121, 150, receiver.output);

    // Under load the receiver may be between two pg_receivewal runs for a moment: wait for it to stream again.
    const check = await waitFor('check to see receive-wal streaming', async () => {
      const result = await ws.run(['check', 'pg']);
      return /receive-wal running: OK \(pid \d+, streaming/.test(result.stdout) ? result : undefined;
    }, 60_000, receiver.output);
    expect(check.stdout).toMatch(/receive-wal running: OK \(pid \d+, streaming/);
    expect(check.stdout).toMatch(/replication slot: OK \("pgharbor" active/);

    const stop = await ws.run(['receive-wal', '--stop', 'pg']);
    expect(stop.stderr).toBe('');
    expect(stop.stdout).toMatch(/Stopped receive-wal for server 'pg' \(pid \d+\); last stored [0-9A-F]{24}\.partial/);
    const ended = await receiver;
    expect(ended.exitCode, receiver.output()).toBe(0);
    expect(receiver.output()).toContain(`archived ${second}`);
    expect((await statusOf(ws)).state).toBe('stopped');

    const stopped = await ws.run(['check', 'pg']);
    expect(stopped.exitCode).toBe(1);
    expect(stopped.stdout).toMatch(/receive-wal running: FAILED \(not running\)\n\t\tHINT: run `pgharbor receive-wal pg`/);
    expect(stopped.stdout).toMatch(/replication slot: FAILED \(slot "pgharbor" exists but is not in use/);

    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    expect(await ids(restored)).toEqual(range(1, 150));
    await restored.destroy();
  });

  it('after a restore promoted onto timeline 2 in place of the old server, receive-wal follows it without manual steps', async () => {
    const receiver = startReceiver(ws);
    receivers.push(receiver);
    await waitFor('receive-wal to stream', async () => (await receiverRow(ws.cluster))?.state === 'streaming', 30_000, receiver.output);

    // The seed: recover to a named point, promote, and run the recovered copy where the old server was.
    await ws.cluster.stop();
    const target = await ws.restoreTarget('promoted');
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--target-name', 'before_101', '--target-action', 'promote']);
    expect(restore.exitCode, restore.stderr).toBe(0);
    promoted = await startExistingCluster(target, { port: ws.cluster.port, settings: { unix_socket_directories: ws.cluster.socketDir } });
    // It listens where the old server did, so the old server's conninfo (and query helper) reach it.
    const b = { query: ws.cluster.query.bind(ws.cluster) as Workspace['cluster']['query'], logFile: promoted.logFile };
    await waitPromoted(b);
    expect(await ids(b)).toEqual(range(1, 100));

    // Same conninfo, new timeline, no slot: receive-wal creates the slot, resets the spool and streams timeline 2.
    await waitFor('receive-wal to stream timeline 2', async () => {
      const status = await statusOf(ws);
      return status.state === 'streaming' && status.timeline === 2;
    }, 90_000, receiver.output);
    await b.query('INSERT INTO t1 SELECT generate_series(1001, 1010)');
    const [{ file }] = await b.query<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
    expect(file.startsWith('00000002')).toBe(true);
    await waitFor(`${file} in the repository`, () => archived(ws, file), 30_000, receiver.output);
    expect((await readdir(path.join(ws.repoDir, 'pg', 'wal', 'history'))).some((f) => f.startsWith('00000002.history-'))).toBe(true);
    await writeIntoPartial(ws, b, 1011, 1020, receiver.output);

    const stop = await ws.run(['receive-wal', '--stop', 'pg']);
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect((await receiver).exitCode, receiver.output()).toBe(0);
    const log = receiver.output();
    expect(log).toMatch(/created replication slot "pgharbor"/);
    // Which of the two the server reports depends on timing: asked for timeline 1 past the fork, it says "not in this
    // server's history" (reset at the fork); asked before it has flushed that far, "ahead of the WAL flush position"
    // (reset at the slot). Either way the spool is reset and timeline 2 streams, as asserted above.
    expect(log).toMatch(/cannot continue from the spool: requested starting point .* (on timeline 1 is not in this server's history|is ahead of the WAL flush position)/);
    expect(log).toMatch(/reset: moved [0-9A-F]{24}\.partial \(stored in the repositories as/);
    expect(log).toMatch(/reset: (created the empty 00000001[0-9A-F]{16}\.partial: pg_receivewal restarts at .* where the server's history forked|pg_receivewal restarts at the replication slot's position)/);
    const { lastReset } = await statusOf(ws);
    expect(lastReset?.movedTo && existsSync(lastReset.movedTo)).toBe(true);
    expect((await readdir(lastReset!.movedTo!)).some((f) => f.endsWith('.partial'))).toBe(true);

    // The archive now holds timeline 1 up to the fork, the history file and timeline 2 up to its last .partial.
    const again = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', again])).exitCode).toBe(0);
    const restored = await ws.startRestored(again);
    await waitPromoted(restored);
    expect(await ids(restored)).toEqual([...range(1, 100), ...range(1001, 1020)]);
    await restored.destroy();
  });

  it('--drop-slot drops the slot of a stopped receiver', async () => {
    await ws.run(['receive-wal', '--stop', 'pg']);
    const drop = await ws.run(['receive-wal', '--drop-slot', 'pg']);
    expect(drop.exitCode, drop.stderr).toBe(0);
    expect(drop.stdout).toContain("Replication slot 'pgharbor' dropped");
    expect(await ws.cluster.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'pgharbor'`)).toEqual([]); // the promoted server, where the old one was
    expect((await ws.run(['receive-wal', '--drop-slot', 'pg'])).stdout).toContain('does not exist');
  });
});

describe('receive-wal --synchronous', () => {
  let ws: Workspace;
  let receiver: (ResultPromise & { output(): string }) | undefined;

  beforeAll(async () => {
    ws = await streamingWorkspace({ settings: { synchronous_standby_names: 'pgharbor_receive_wal' } });
  });
  afterAll(async () => {
    receiver?.kill('SIGKILL');
    await ws?.cleanup();
  });

  it('is a synchronous standby: a commit waiting for it succeeds; one receiver per server; a killed one is replaced; SIGTERM stops it cleanly; --reset; a spool ahead of the server is reset; --drop-slot', async () => {
    receiver = startReceiver(ws, ['--synchronous']); // the slot does not exist yet: create_slot auto
    await waitFor('a synchronous receive-wal', async () => (await receiverRow(ws.cluster))?.sync_state === 'sync', 30_000, receiver.output);
    const commit = ws.cluster.query('SET synchronous_commit = on; CREATE TABLE t1 (id int); INSERT INTO t1 VALUES (1)');
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('the synchronous commit hangs')), 15_000));
    await Promise.race([commit, timeout]);

    const running = await ws.run(['receive-wal', '--reset', 'pg']);
    expect(running.exitCode).toBe(1);
    expect(running.stderr).toMatch(/receive-wal for server pg is running \(pid \d+\)/);
    const second = await ws.run(['receive-wal', 'pg']);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(/already running/);

    // Killed outright, receive-wal leaves pg_receivewal holding the slot: the next one ends it and takes over.
    receiver.kill('SIGKILL');
    await receiver;
    const { receiverPid } = JSON.parse(await readFile(path.join(ws.dir, 'state', 'pg', 'receive-wal.json'), 'utf8')) as { receiverPid: number };
    expect(existsSync(`/proc/${receiverPid}`)).toBe(true);
    receiver = startReceiver(ws, ['--synchronous']);
    await waitFor('the orphan to be ended', async () => receiver!.output().includes(`ending pg_receivewal pid ${receiverPid}`), 30_000, receiver.output);
    await waitFor('a synchronous receive-wal again', async () => (await receiverRow(ws.cluster))?.sync_state === 'sync', 30_000, receiver.output);

    receiver.kill('SIGTERM');
    expect((await receiver).exitCode, receiver.output()).toBe(0);
    expect((await statusOf(ws)).state).toBe('stopped');

    const reset = await ws.run(['receive-wal', '--reset', 'pg']);
    expect(reset.exitCode, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/moved [0-9A-F]{24}\.partial \(stored in the repositories/);
    const spool = path.join(ws.dir, 'state', 'pg', 'streaming');
    expect((await readdir(spool)).filter((f) => /^[0-9A-F]{24}/.test(f))).toEqual([]);

    // A spool ahead of the server (what a restore without a new timeline leaves): receive-wal resets it on its own.
    await writeFile(path.join(spool, '0000000100000000000000F0.partial'), '');
    receiver = startReceiver(ws, ['--synchronous']);
    await waitFor('a synchronous receive-wal after the reset', async () => (await receiverRow(ws.cluster))?.sync_state === 'sync', 30_000, receiver.output);
    expect(receiver.output()).toMatch(/cannot continue from the spool: requested starting point 0\/F0000000 is ahead of the WAL flush position of this server/);
    expect(receiver.output()).toMatch(/reset: removed the empty start marker 0000000100000000000000F0\.partial/);
    receiver.kill('SIGTERM');
    expect((await receiver).exitCode, receiver.output()).toBe(0);

    const drop = await ws.run(['receive-wal', '--drop-slot', 'pg']);
    expect(drop.exitCode, drop.stderr).toBe(0);
    expect(await ws.cluster.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = 'pgharbor'`)).toEqual([]);
  });
});
