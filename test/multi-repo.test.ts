import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, pgharbor, switchAndWaitArchived, waitPromoted, type Workspace } from './harness.js';

/**
 * The seed's pgBackRest setup on posix: repo1 keeps two full backups, repo2
 * one; WAL goes to both; each restores on its own.
 */
describe('two repositories with their own retention', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true, serverExtra: ['retention: REDUNDANCY 2'] });
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, config.replace('      - { type: posix, path: ./repo }', '      - { type: posix, path: ./repo }\n      - { type: posix, path: ./repo2, name: offsite, retention: REDUNDANCY 1 }'));
    await ws.cluster.query('CREATE TABLE t (i int)');
  });
  afterAll(async () => ws?.cleanup());

  it('archive-push stores every segment in both; retention applies per repository; each restores', async () => {
    for (let i = 1; i <= 3; i++) {
      await ws.cluster.query(`INSERT INTO t VALUES (${i})`);
      expect((await ws.run(['backup', 'pg'])).exitCode).toBe(0);
      expect((await ws.run(['backup', 'pg', '--repo', '2'])).exitCode).toBe(0);
      await switchAndWaitArchived(ws.cluster);
      await new Promise((r) => setTimeout(r, 1100));
    }
    const segs = async (repo: string) => (await readdir(path.join(ws.dir, repo, 'pg', 'wal', '0000000100000000'))).map((f) => f.slice(0, 24)).filter((f) => /^[0-9A-F]{24}$/.test(f));
    // Automatic retention ran after each backup, per repository.
    const list = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string; repository: string }[];
    expect(list.filter((b) => b.repository === 'repo1').length).toBe(2);
    expect(list.filter((b) => b.repository === 'offsite').length).toBe(1);
    const text = await ws.run(['list-backups', 'pg']);
    expect(text.stdout).toMatch(/\[offsite\]/);
    // WAL after the retained backups is in both repositories.
    const newest = (await segs('repo2')).at(-1)!;
    expect(await segs('repo')).toContain(newest);

    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', target, '--repo', '2'])).exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    expect((await restored.query<{ i: number }>('SELECT i FROM t ORDER BY i')).map((r) => r.i)).toEqual([1, 2, 3]);
  });

  it('archive-push reports the repository that is down and does not report success', async () => {
    const broken = path.join(ws.dir, 'broken.yaml');
    await writeFile(path.join(ws.dir, 'afile'), 'not a directory');
    await writeFile(broken, (await readFile(ws.configFile, 'utf8')).replace('path: ./repo2', 'path: ./afile/repo2'));
    const [{ file }] = await ws.cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
    const copy = path.join(ws.dir, file);
    await writeFile(copy, await readFile(path.join(ws.cluster.dataDir, 'pg_wal', file)));
    const result = await pgharbor(['--config', broken, 'archive-push', 'pg', copy], { asPgUser: true });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/archive-push of [0-9A-F]{24} for pg failed in offsite/);
    expect(result.stderr).toMatch(/HINT: PostgreSQL keeps the segment and retries/);
  });
});
