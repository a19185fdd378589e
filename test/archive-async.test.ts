import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, switchAndWaitArchived, waitPromoted, type Workspace } from './harness.js';

/** archive_async: a background archiver pushes ahead, archive-push confirms. */
describe('asynchronous archive-push', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace({
      asPgUser: true,
      archive: true,
      serverExtra: ['archive_async: true', 'archive_process_max: 2', 'archive_queue_max: "16MB"'],
    });
    const config = await readFile(ws.configFile, 'utf8');
    await import('node:fs/promises').then((fs) => fs.writeFile(ws.configFile, `state_dir: ./state\n${config}`));
  });
  afterAll(async () => ws?.cleanup());

  it('archives everything a write-heavy load produces, and a restore replays it all', async () => {
    expect((await ws.run(['backup', 'pg'])).exitCode).toBe(0);
    await ws.cluster.pgbench(['-i', '-s', '2', '-q', 'postgres']);
    await ws.cluster.pgbench(['-n', '-T', '4', '-c', '2', 'postgres']);
    const last = await switchAndWaitArchived(ws.cluster, 60_000);
    const [stats] = await ws.cluster.query<{ archived: string; failed: string }>('SELECT archived_count::text AS archived, failed_count::text AS failed FROM pg_stat_archiver');
    expect(Number(stats.archived)).toBeGreaterThan(3);
    expect(stats.failed).toBe('0');
    // The archiver ran in the background and left its log and markers in the spool.
    const spool = path.join(ws.dir, 'state', 'pg', 'archive-spool');
    expect((await readdir(spool)).includes('out')).toBe(true);

    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', target])).exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    const [a] = await ws.cluster.query<{ s: string }>('SELECT sum(abalance)::text AS s FROM pgbench_accounts');
    const [b] = await restored.query<{ s: string }>('SELECT sum(abalance)::text AS s FROM pgbench_accounts');
    expect(b.s).toBe(a.s);
    expect(last).toMatch(/^[0-9A-F]{24}$/);
  });

  it('check reports the async archive queue', async () => {
    const result = await ws.run(['check', 'pg']);
    expect(result.stdout).toMatch(/async archive queue: (OK|FAILED)/);
    expect(result.stdout).toMatch(/WAL archive: OK/);
  });
});
