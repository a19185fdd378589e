import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, waitPromoted, type Workspace } from './harness.js';

/** Whether `work` finishes within `ms`: a commit waiting for a synchronous standby never does. */
async function finishesWithin<T>(work: Promise<T>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A restored copy must never wait on or write to the server it came from
 * (issue 19): the seed's synchronous setup names a standby in
 * synchronous_standby_names, which a copy carries in postgresql.auto.conf.
 */
describe('restored copies are detached from their origin', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
    await ws.cluster.query('CREATE TABLE t (id int PRIMARY KEY)');
    await ws.cluster.query('INSERT INTO t SELECT generate_series(1, 10)');
    // As the seed sets it up for a synchronous receive-wal; no commit happens on the source from here on.
    await ws.cluster.query("ALTER SYSTEM SET synchronous_standby_names = 'pgharbor_receiver'");
    await ws.cluster.query('ALTER SYSTEM SET synchronous_commit = on'); // the sandbox turns it off for speed
    await ws.cluster.query('SELECT pg_reload_conf()');
    const backup = await ws.run(['backup', 'pg']);
    expect(backup.exitCode, backup.stderr).toBe(0);
    await ws.cluster.query('ALTER SYSTEM RESET synchronous_standby_names');
    await ws.cluster.query('ALTER SYSTEM RESET synchronous_commit');
    await ws.cluster.query('SELECT pg_reload_conf()');
  });
  afterAll(async () => ws?.cleanup());

  it('clears synchronous_standby_names and stops subscriptions, says so, and the promoted copy commits at once', async () => {
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect(restore.stdout).toMatch(/IMPORTANT: [^\n]*\n(?:.*\n)*.*synchronous_standby_names = '': [^\n]*--keep-sync/);
    expect(restore.stdout).toMatch(/max_logical_replication_workers = 0: [^\n]*--keep-subscriptions/);
    // The backup itself still carries the origin's setting; ours comes after it and wins.
    const auto = await readFile(path.join(target, 'postgresql.auto.conf'), 'utf8');
    expect(auto.indexOf("synchronous_standby_names = 'pgharbor_receiver'")).toBeGreaterThanOrEqual(0);
    expect(auto.lastIndexOf("synchronous_standby_names = ''")).toBeGreaterThan(auto.indexOf("synchronous_standby_names = 'pgharbor_receiver'"));

    const copy = await ws.startRestored(target);
    await waitPromoted(copy);
    expect((await copy.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s"))[0].s).toBe('');
    expect((await copy.query<{ s: string }>("SELECT current_setting('max_logical_replication_workers') AS s"))[0].s).toBe('0');
    // Hangs forever (wait_event SyncRep) when the setting is kept; 10 s only bounds the failure.
    expect(await finishesWithin(copy.query('INSERT INTO t VALUES (11)'), 10_000)).toBe(true);
    expect((await copy.query<{ n: string }>('SELECT count(*) AS n FROM t'))[0].n).toBe('11');
  });

  it('--keep-sync and --keep-subscriptions keep them, and say nothing about them', async () => {
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--keep-sync', '--keep-subscriptions']);
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect(restore.stdout).not.toMatch(/synchronous_standby_names|max_logical_replication_workers/);
    const copy = await ws.startRestored(target);
    await waitPromoted(copy);
    expect((await copy.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s"))[0].s).toBe('pgharbor_receiver');
    // What the default prevents: with the setting kept, a commit waits for a standby that is not there.
    expect(await finishesWithin(copy.query('INSERT INTO t VALUES (12)').catch(() => {}), 3_000)).toBe(false);
  });

  it('a standby restored with --standby keeps synchronous_standby_names (it follows its primary)', async () => {
    const target = await ws.restoreTarget();
    const restore = await ws.run(['--json', 'restore', 'pg', 'latest', target, '--standby']);
    expect(restore.exitCode, restore.stderr).toBe(0);
    const settings: string[] = JSON.parse(restore.stdout).recovery.settings;
    expect(settings.some((s) => s.startsWith('synchronous_standby_names'))).toBe(false);
    expect(settings.some((s) => s.startsWith('max_logical_replication_workers'))).toBe(false);
  });
});
