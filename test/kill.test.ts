import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ResultPromise } from 'execa';
import { createWorkspace, pgbenchChecksums, pgharbor, pgharborProcess, type CliResult, type Workspace } from './harness.js';

/**
 * A backup that dies half-way (the CLI killed, its WAL sender terminated, ^C)
 * must never show up as DONE nor be restorable, and must not stand in the
 * way of the next backup.
 */

const PGBENCH_SCALE = 10; // ~160 MB: at max_rate 8M a backup takes ~20 s, plenty of time to kill it half-way
const KILL_AFTER_BYTES = 4 * 1024 * 1024; // stored bytes seen in the open bundle before we strike

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = text.indexOf('(');
    const close = text.lastIndexOf(')');
    const [state, ppid] = text.slice(close + 2).split(' ');
    return { pid, ppid: Number(ppid), comm: text.slice(open + 1, close), state };
  } catch {
    return undefined;
  }
}

/** A live process (a zombie waiting to be reaped counts as gone). */
function isRunning(pid: number): boolean {
  const info = procInfo(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Wait for a process to end; false if it is still there after `timeoutMs`. */
async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  return waitUntil(`pid ${pid} to exit`, timeoutMs, () => !isRunning(pid) || undefined).then(
    () => true,
    () => false,
  );
}

interface Manifest {
  id: string;
  status: 'STARTED' | 'DONE' | 'FAILED';
  error?: { message: string; hint?: string };
  bundles: { id: number }[];
  process?: { pid: number };
}

function describeResult(result: CliResult | { exitCode?: number; signal?: string; stdout: unknown; stderr: unknown }): string {
  return `exit ${result.exitCode}${'signal' in result && result.signal ? ` signal ${result.signal}` : ''}\nstdout:\n${String(result.stdout)}\nstderr:\n${String(result.stderr)}`;
}

function expectOneLineError(result: { stderr: unknown }): string {
  const lines = String(result.stderr).split('\n');
  const at = lines.findIndex((l) => l.startsWith('ERROR: '));
  expect(at, String(result.stderr)).toBeGreaterThanOrEqual(0);
  expect(lines[at + 1] ?? '', String(result.stderr)).toMatch(/^HINT: \S/);
  return lines[at];
}

describe('a backup killed half-way', () => {
  let ws: Workspace;
  /** Same server and repository as ws.configFile, without max_rate: for the backups that must succeed. */
  let fastConfig: string;
  let sourceChecksums: Record<string, string>;
  const backupsDir = () => path.join(ws.repoDir, 'pg', 'backups');
  const spawned: number[] = [];

  const runFast = (args: string[]) => pgharbor(['--config', fastConfig, ...args]);

  async function readManifest(id: string): Promise<Manifest> {
    return JSON.parse(await readFile(path.join(backupsDir(), id, 'manifest.json'), 'utf8')) as Manifest;
  }

  /** Server pids of the WAL senders running pgharbor's BASE_BACKUP. */
  async function walSenders(): Promise<number[]> {
    const rows = await ws.cluster.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' AND application_name = 'pgharbor_backup'`);
    return rows.map((r) => r.pid);
  }

  async function backupIds(): Promise<string[]> {
    return (await readdir(backupsDir()).catch(() => [])).sort();
  }

  /**
   * Start a throttled backup and return once it is streaming: its manifest
   * says STARTED, the server runs its WAL sender (application_name
   * pgharbor_backup, the server-side end of pgharbor's own BASE_BACKUP), and some MiB of
   * data have reached the repository.
   */
  async function startSlowBackup(): Promise<{ proc: ResultPromise; cliPid: number; id: string; basebackupPid: number; done: () => boolean }> {
    const known = new Set(await backupIds());
    const proc = pgharborProcess(['--config', ws.configFile, 'backup', 'pg']);
    const cliPid = proc.pid!;
    spawned.push(cliPid);
    let finished = false;
    let outcome: unknown;
    void proc.then((r) => ((finished = true), (outcome = r)));
    const notFinished = () => {
      if (finished) throw new Error(`the backup ended before it could be interrupted:\n${describeResult(outcome as CliResult)}`);
    };

    const id = await waitUntil('a STARTED manifest', 60_000, async () => {
      notFinished();
      for (const candidate of await backupIds()) {
        if (known.has(candidate)) continue;
        const manifest = await readManifest(candidate).catch(() => undefined);
        if (manifest?.status === 'STARTED') return candidate;
      }
      return undefined;
    });
    const basebackupPid = await waitUntil('the backup\'s WAL sender on the server', 30_000, async () => {
      notFinished();
      const pids = await walSenders();
      return pids.length === 1 ? pids[0] : undefined;
    });
    await waitUntil(`${KILL_AFTER_BYTES} bytes in the open bundle of ${id}`, 60_000, async () => {
      notFinished();
      const dir = path.join(backupsDir(), id);
      for (const name of await readdir(dir).catch(() => [])) {
        if (!name.includes('.tmp-')) continue;
        const info = await stat(path.join(dir, name)).catch(() => undefined);
        if (info && info.size >= KILL_AFTER_BYTES) return true;
      }
      return undefined;
    });
    // Still mid-way: the manifest has not moved on.
    expect((await readManifest(id)).status).toBe('STARTED');
    return { proc, cliPid, id, basebackupPid, done: () => finished };
  }

  /** The bundle files of `id` that are complete (renamed from their temp name). */
  async function completeBundles(id: string): Promise<string[]> {
    return (await readdir(path.join(backupsDir(), id))).filter((name) => /^bundle-\d+\.dat$/.test(name)).sort();
  }

  /** Everything about `id` that says "not restorable", as a user would see it. */
  async function expectNotRestorable(id: string): Promise<void> {
    const list = await runFast(['--json', 'list-backups', 'pg']);
    expect(list.exitCode, describeResult(list)).toBe(0);
    const row = (JSON.parse(list.stdout) as Manifest[]).find((b) => b.id === id);
    expect(row?.status).toBe('FAILED');

    const text = await runFast(['list-backups', 'pg']);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^pg ${id} .*FAILED`, 'm'));

    const show = await runFast(['--json', 'show-backup', 'pg', id]);
    expect(show.exitCode, describeResult(show)).toBe(0);
    expect(JSON.parse(show.stdout).status).toBe('FAILED');

    const target = await ws.restoreTarget();
    const restore = await runFast(['restore', 'pg', id, target]);
    expect(restore.exitCode, describeResult(restore)).toBe(1);
    expect(expectOneLineError(restore)).toMatch(/not restorable/);
    expect(await readdir(target)).toEqual([]);
  }

  /** A full (unthrottled) backup succeeds, restores, starts and holds the source's data. */
  async function expectNextBackupWorks(check: { restore: boolean }): Promise<string> {
    const backup = await runFast(['--json', 'backup', 'pg']);
    expect(backup.exitCode, describeResult(backup)).toBe(0);
    const manifest = JSON.parse(backup.stdout) as Manifest;
    expect(manifest.status).toBe('DONE');
    expect((await readManifest(manifest.id)).status).toBe('DONE');
    if (check.restore) {
      const target = await ws.restoreTarget();
      const restore = await runFast(['restore', 'pg', 'latest', target]);
      expect(restore.exitCode, describeResult(restore)).toBe(0);
      expect(restore.stdout).toContain(`Restored backup ${manifest.id}`);
      const restored = await ws.startRestored(target);
      expect(await pgbenchChecksums(restored)).toEqual(sourceChecksums);
      await restored.stop();
    }
    return manifest.id;
  }

  beforeAll(async () => {
    // Uncompressed: the strike comes after KILL_AFTER_BYTES stored bytes, and with the zstd default
    // pgbench's big table shrinks so much that the open bundle reaches them only at the very end.
    ws = await createWorkspace({ serverExtra: ['max_rate: "8M"', 'compression: none'] });
    await ws.cluster.pgbench(['-i', '-s', String(PGBENCH_SCALE), '-q', 'postgres']);
    await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
    sourceChecksums = await pgbenchChecksums(ws.cluster);
    fastConfig = path.join(ws.dir, 'fast.config.yaml');
    const config = await readFile(ws.configFile, 'utf8');
    expect(config).toContain('max_rate: "8M"');
    await writeFile(fastConfig, config.replace(/^\s*max_rate:.*\n/m, ''));
  }, 300_000);

  afterEach(async () => {
    // Never leave a CLI behind, whatever the test did.
    for (const pid of spawned.splice(0)) {
      if (!isRunning(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      await waitForExit(pid, 10_000);
    }
  });

  afterAll(async () => ws?.cleanup());

  it('(a) SIGKILL of the CLI: FAILED, not restorable, no "latest"; the next backup succeeds and marks it FAILED for good', async () => {
    const { proc, id, basebackupPid } = await startSlowBackup();
    proc.kill('SIGKILL');
    const result = await proc;
    expect(result.signal).toBe('SIGKILL');

    // The WAL sender loses its client and must end by itself (its backup with it).
    const ended = await waitForExit(basebackupPid, 30_000);
    expect(ended, `the WAL sender (pid ${basebackupPid}) kept running after its CLI was killed`).toBe(true);

    // On disk the manifest still says STARTED (nobody could change it), but no one may take it for a live or good backup.
    expect((await readManifest(id)).status).toBe('STARTED');
    await expectNotRestorable(id);

    const target = await ws.restoreTarget();
    const latest = await runFast(['restore', 'pg', 'latest', target]);
    expect(latest.exitCode, describeResult(latest)).toBe(1);
    expect(expectOneLineError(latest)).toMatch(/no completed backup/);
    expect(await readdir(target)).toEqual([]);
    // cron keeps the newest backup's failure listed, with what the killed writer left.
    expect((await runFast(['cron'])).exitCode).toBe(0);
    expect(existsSync(path.join(backupsDir(), id, 'manifest.json'))).toBe(true);

    const delivered = await expectNextBackupWorks({ restore: true });
    expect(delivered).not.toBe(id);
    const old = await readManifest(id);
    expect(old.status).toBe('FAILED');
    expect(old.error?.message).toMatch(/interrupted/);
    expect(old.process).toBeUndefined();
    await expectNotRestorable(id);
    // Once a later backup succeeded, cron removes the failed one whole: its bundles and the temp files of its killed writer.
    const cron = await runFast(['cron']);
    expect(cron.exitCode, describeResult(cron)).toBe(0);
    expect(existsSync(path.join(backupsDir(), id))).toBe(false);
  }, 300_000);

  it('(b) the WAL sender terminated on the server: the CLI fails saying so, the manifest says FAILED, the next backup succeeds', async () => {
    const { proc, id, basebackupPid } = await startSlowBackup();
    const closedBefore = await completeBundles(id);
    await ws.cluster.query('SELECT pg_terminate_backend($1)', [basebackupPid]);
    const result = await Promise.race([proc, sleep(90_000).then(() => undefined)]);
    expect(result, 'the CLI did not end within 90 s after its WAL sender was terminated').toBeDefined();
    expect(result!.exitCode, describeResult(result!)).toBe(1);
    const said = /server pg: (PostgreSQL ended the backup with an error: terminating connection|the replication connection was lost)/;
    expect(expectOneLineError(result!)).toMatch(said);

    const manifest = await readManifest(id);
    expect(manifest.status).toBe('FAILED');
    expect(manifest.error?.message).toMatch(said);
    expect(manifest.bundles).toEqual([]);
    // No bundle was completed after the strike (bundles closed before it may stay until the
    // backup is deleted; a big table gets its own bundle, closing the one before it) and the open one was cleaned up.
    const leftovers = (await readdir(path.join(backupsDir(), id))).filter((name) => name !== 'manifest.json');
    expect(await completeBundles(id)).toEqual(closedBefore);
    expect(leftovers.filter((name) => name.includes('.tmp-')), 'temp files left behind by the failed backup').toEqual([]);

    await expectNotRestorable(id);
    await expectNextBackupWorks({ restore: false });
    expect((await readManifest(id)).status).toBe('FAILED');
  }, 300_000);

  it('(c) SIGINT to the CLI: it exits non-zero, the manifest says FAILED "interrupted", the next backup succeeds', async () => {
    const { proc, id, basebackupPid } = await startSlowBackup();
    const closedBefore = await completeBundles(id);
    proc.kill('SIGINT');
    const result = await Promise.race([proc, sleep(90_000).then(() => undefined)]);
    expect(result, 'the CLI did not end within 90 s after SIGINT').toBeDefined();
    expect(result!.exitCode ?? -1, describeResult(result!)).not.toBe(0);
    expect(result!.exitCode, describeResult(result!)).toBe(1);
    expect(expectOneLineError(result!)).toMatch(/interrupted/);
    expect(await waitForExit(basebackupPid, 30_000), 'the WAL sender kept running after the CLI was interrupted').toBe(true);

    const manifest = await readManifest(id);
    expect(manifest.status).toBe('FAILED');
    expect(manifest.error?.message).toMatch(/interrupted/);
    expect(await completeBundles(id)).toEqual(closedBefore);

    await expectNotRestorable(id);
    await expectNextBackupWorks({ restore: false });
    expect((await readManifest(id)).status).toBe('FAILED');
    expect(existsSync(path.join(ws.repoDir, 'pg', 'locks', 'backup.lock'))).toBe(false);
  }, 300_000);

  it('(d) deleting a backup whose CLI was killed removes all of it, including the half-written bundle', async () => {
    const { proc, id, basebackupPid } = await startSlowBackup();
    proc.kill('SIGKILL');
    await proc;
    if (!(await waitForExit(basebackupPid, 30_000))) process.kill(basebackupPid, 'SIGKILL');
    const dir = path.join(backupsDir(), id);
    expect((await readdir(dir)).some((name) => name.includes('.tmp-')), 'the killed backup left no partial bundle to clean up').toBe(true);

    const del = await runFast(['delete', 'pg', id]);
    expect(del.exitCode, describeResult(del)).toBe(0);
    const left = await readdir(dir).catch(() => [] as string[]);
    expect(left, `delete left files of backup ${id} in ${dir}`).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect((await runFast(['--json', 'list-backups', 'pg'])).stdout).not.toContain(id);
  }, 300_000);
});
