import { readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, foreignSegment, switchAndWaitArchived, pgharbor, waitFor, waitPromoted, type Workspace } from './harness.js';

const ids = async (cluster: { query: Workspace['cluster']['query'] }) =>
  (await cluster.query<{ id: number }>('SELECT id FROM t1 ORDER BY id')).map((r) => r.id);

const timelineOf = async (cluster: { query: Workspace['cluster']['query'] }) => {
  const [{ file }] = await cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
  return parseInt(file.slice(0, 8), 16);
};

/**
 * The seed's workflows: archive with archive_command, then recover to a
 * point in time, onto a new timeline, and keep going.
 */
describe('WAL archiving and point-in-time recovery', () => {
  let ws: Workspace;
  let beforeDelete: string;
  let afterDeleteLsn: string;

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
    await ws.cluster.query('CREATE TABLE t1 (id int PRIMARY KEY)');
    await ws.cluster.query('INSERT INTO t1 SELECT generate_series(1, 100)');
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    await switchAndWaitArchived(ws.cluster);
    // The seed: note the time, then lose ids 91..100.
    [{ now: beforeDelete }] = await ws.cluster.query<{ now: string }>(`SELECT now()::text AS now`);
    await new Promise((r) => setTimeout(r, 50));
    await ws.cluster.query('DELETE FROM t1 WHERE id > 90');
    // insert, not write, position: with synchronous_commit = off the commit may not be written yet.
    [{ lsn: afterDeleteLsn }] = await ws.cluster.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await switchAndWaitArchived(ws.cluster);
  });
  afterAll(async () => ws?.cleanup());

  it('archive-push stored every segment with its checksum, and is idempotent', async () => {
    const walDirs = await readdir(path.join(ws.repoDir, 'pg', 'wal'));
    const files = (await Promise.all(walDirs.map(async (d) => readdir(path.join(ws.repoDir, 'pg', 'wal', d))))).flat();
    // <name>-<sha256>, then the suffix of the repository's compression (zstd by default).
    expect(files.some((f) => /^[0-9A-F]{24}-[0-9a-f]{64}(\.zst)?$/.test(f))).toBe(true);
    expect(files.some((f) => /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup-[0-9a-f]{64}(\.zst)?$/.test(f))).toBe(true);
    // Pushing a segment that is already archived, with the same bytes, succeeds.
    const segment = files.find((f) => /^[0-9A-F]{24}-/.test(f))!.slice(0, 24);
    const copy = path.join(ws.dir, segment);
    const get = await ws.run(['archive-get', 'pg', segment, copy]);
    expect(get.exitCode).toBe(0);
    expect((await ws.run(['archive-push', 'pg', copy])).exitCode).toBe(0);
    // Different bytes under the same name are refused and overwrite nothing.
    const bytes = await readFile(copy);
    bytes[100_000] ^= 0xff;
    await writeFile(copy, bytes);
    const clash = await ws.run(['archive-push', 'pg', copy]);
    expect(clash.exitCode).toBe(1);
    expect(clash.stderr).toContain(`${segment} is already archived`);
    expect(clash.stderr).toContain('different content');
    const again = await ws.run(['archive-get', 'pg', segment, copy + '.2']);
    expect(again.exitCode).toBe(0);
  });

  it('archive-get exits 1 quietly for a file that is not archived', async () => {
    const result = await ws.run(['archive-get', 'pg', '00000009.history', path.join(ws.dir, 'nothing')]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe('');
    expect(existsSync(path.join(ws.dir, 'nothing'))).toBe(false);
  });

  it('--target-lsn stops right after the delete', async () => {
    const target = await ws.restoreTarget();
    const result = await ws.run(['restore', 'pg', 'latest', target, '--target-lsn', afterDeleteLsn, '--target-action', 'promote']);
    expect(result.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    const got = await ids(restored);
    expect(got).toEqual(Array.from({ length: 90 }, (_, i) => i + 1));
    await restored.stop();
  });

  it('--target-name with a restore point, and --target-action pause leaves a read-only server until pg_wal_replay_resume()', async () => {
    await ws.cluster.query(`INSERT INTO t1 VALUES (500)`);
    await ws.cluster.query(`SELECT pg_create_restore_point('before_600')`);
    await ws.cluster.query(`INSERT INTO t1 VALUES (600)`);
    await switchAndWaitArchived(ws.cluster);
    const target = await ws.restoreTarget();
    const result = await ws.run(['restore', 'pg', 'latest', target, '--target-name', 'before_600']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('pg_wal_replay_resume()');
    const restored = await ws.startRestored(target);
    await waitFor('pause at the target', async () => {
      const [row] = await restored.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
      return row.state === 'paused' ? true : undefined;
    });
    const current = await ids(restored);
    expect(current).toContain(500);
    expect(current).not.toContain(600);
    await expect(restored.query('INSERT INTO t1 VALUES (700)')).rejects.toThrow(/read-only/);
    await restored.query('SELECT pg_wal_replay_resume()');
    await waitPromoted(restored);
    await restored.query('INSERT INTO t1 VALUES (700)');
    await restored.stop();
  });

  it('--target-xid (inclusive and --exclusive) and --target-immediate', async () => {
    const [{ xid }] = await ws.cluster.query<{ xid: string }>(`INSERT INTO t1 VALUES (800) RETURNING xmin::text AS xid`);
    await ws.cluster.query(`INSERT INTO t1 VALUES (900)`);
    await switchAndWaitArchived(ws.cluster);
    const byXid = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', byXid, '--target-xid', xid, '--target-action', 'promote'])).exitCode).toBe(0);
    const a = await ws.startRestored(byXid);
    await waitPromoted(a);
    const got = await ids(a);
    expect(got).toContain(800);
    expect(got).not.toContain(900);
    await a.stop();

    // --exclusive: stop just before the transaction, so its row is missing too.
    const exclusive = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', exclusive, '--target-xid', xid, '--exclusive', '--target-action', 'promote'])).exitCode).toBe(0);
    const c = await ws.startRestored(exclusive);
    await waitPromoted(c);
    expect(await ids(c)).not.toContain(800);
    expect(await ids(c)).toContain(600);
    await c.stop();

    const immediate = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'oldest', immediate, '--target-immediate', '--target-action', 'promote'])).exitCode).toBe(0);
    const b = await ws.startRestored(immediate);
    await waitPromoted(b);
    expect(await ids(b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1)); // the backup's own state
    await b.stop();
  });

  it('a restored copy has archiving switched off unless asked, and says so', async () => {
    const target = await ws.restoreTarget();
    const result = await ws.run(['restore', 'pg', 'latest', target]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain("archive_mode = 'off'");
    expect(await readFile(path.join(target, 'postgresql.auto.conf'), 'utf8')).toMatch(/archive_mode = 'off'/);
  });

  it('bad targets fail before anything is written', async () => {
    const cases: [string[], RegExp, number][] = [
      [['--target-time', '1999-01-01 00:00:00+00'], /no backup of pg .* reaches the target/, 2],
      [['--target-time', 'yesterday-ish'], /is not a time/, 2],
      [['--target-lsn', '12345'], /is not an LSN/, 2],
      [['--target-xid', '12', '--target-lsn', '0/1'], /choose one recovery target/, 2],
      [['--target-action', 'promote'], /needs a recovery target/, 2],
    ];
    for (const [args, message, code] of cases) {
      const target = await ws.restoreTarget();
      const result = await ws.run(['restore', 'pg', 'latest', target, ...args]);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/HINT: /);
      expect(result.exitCode).toBe(code);
      expect(await readdir(target)).toEqual([]);
    }
    const oldest = JSON.parse((await ws.run(['--json', 'show-backup', 'pg', 'oldest'])).stdout).id;
    const early = await ws.restoreTarget();
    const result = await ws.run(['restore', 'pg', oldest, early, '--target-time', '2000-01-01 00:00:00+00']);
    expect(result.stderr).toMatch(/is before backup .* was consistent/);
    expect(await readdir(early)).toEqual([]);
  });

  it('archive-push refuses a segment of another cluster', async () => {
    const foreign = await foreignSegment(ws);
    const result = await ws.run(['archive-push', 'pg', foreign]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/belongs to the cluster with system identifier \d+, but .* holds server pg with \d+/);
    expect(result.stderr).toMatch(/HINT: /);
  });

  // Last: it adds a timeline-2 backup of the recovered server to the repository.
  it("the seed's PITR: back to the noted time, promoted onto timeline 2, archiving on, and a new backup works", async () => {
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--target-time', beforeDelete, '--target-action', 'promote', '--archive-mode', 'preserve']);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    expect(restore.stdout).toContain('recovery_target_time');
    expect(existsSync(path.join(target, 'recovery.signal'))).toBe(true);

    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    expect(await ids(restored)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await timelineOf(restored)).toBe(2);

    // The new timeline's history file and segments reach the archive.
    await restored.query('INSERT INTO t1 VALUES (101)');
    await switchAndWaitArchived(restored);
    expect((await readdir(path.join(ws.repoDir, 'pg', 'wal', 'history'))).some((f) => f.startsWith('00000002.history-'))).toBe(true);

    // A new backup of the recovered server (same system identifier, timeline 2) succeeds and restores.
    const config2 = path.join(ws.dir, 'recovered.config.yaml');
    await writeFile(config2, (await readFile(ws.configFile, 'utf8')).replace(ws.cluster.conninfo, restored.conninfo));
    const backup = await pgharbor(['--config', config2, '--json', 'backup', 'pg'], { asPgUser: true });
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(JSON.parse(backup.stdout).timeline).toBe(2);
    const target2 = await ws.restoreTarget();
    expect((await pgharbor(['--config', config2, 'restore', 'pg', 'latest', target2], { asPgUser: true })).exitCode).toBe(0);
    await restored.stop();
    const again = await ws.startRestored(target2);
    await waitPromoted(again);
    expect(await ids(again)).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
    await again.stop();
  });


});
