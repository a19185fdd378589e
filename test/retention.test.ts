import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, pgharbor, pgharborProcess, switchAndWaitArchived, waitPromoted, type Workspace } from './harness.js';

async function walNames(repoDir: string): Promise<string[]> {
  const root = path.join(repoDir, 'pg', 'wal');
  const out: string[] = [];
  for (const dir of await readdir(root).catch(() => [])) for (const f of await readdir(path.join(root, dir))) out.push(f.replace(/-[0-9a-f]{64}$/, ''));
  return out.sort();
}

async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.filter((f) => !f.includes('/locks/')).sort();
}

const countRows = async (cluster: { query: Workspace['cluster']['query'] }) => Number((await cluster.query<{ n: string }>('SELECT count(*)::text AS n FROM t')).at(0)!.n);

/** The seed's Barman retention, keep, locks and cron, on a real cluster that archives. */
describe('retention: REDUNDANCY 3, keep, expire, locks, cron', () => {
  let ws: Workspace;
  const ids: string[] = [];
  let between: string;

  beforeAll(async () => {
    ws = await createWorkspace({
      asPgUser: true,
      archive: true,
      serverExtra: ['retention: REDUNDANCY 3', 'minimum_redundancy: 1', 'retention_policy_mode: manual'],
    });
    // A plugin that makes a backup fail half-way when asked: a real FAILED backup in the repository.
    await mkdir(path.join(ws.dir, 'plugins'));
    await writeFile(path.join(ws.dir, 'plugins', 'fail.mjs'), `export default { name: 'fail', apply(h) { h.hooks.backup.fileStored.tap('fail', () => { if (process.env.PGH_FAIL_BACKUP) throw new Error('disk on fire'); }); } };\n`);
    await writeFile(ws.configFile, `plugins: [./plugins/fail.mjs]\n${await readFile(ws.configFile, 'utf8')}`);
    await ws.cluster.query('CREATE TABLE t (i int)');
    for (let round = 1; round <= 4; round++) {
      await ws.cluster.query(`INSERT INTO t SELECT generate_series(1, 10)`);
      if (round === 2) {
        const failed = await pgharbor(['--config', ws.configFile, 'backup', 'pg'], { asPgUser: true, env: { ...process.env, PGH_FAIL_BACKUP: '1' } as Record<string, string> });
        expect(failed.exitCode).toBe(1);
      }
      const backup = await ws.run(['--json', 'backup', 'pg']);
      expect(backup.exitCode, backup.stderr).toBe(0);
      ids.push(JSON.parse(backup.stdout).id);
      await switchAndWaitArchived(ws.cluster);
      if (round === 2) {
        await ws.cluster.query(`INSERT INTO t SELECT generate_series(1, 5)`); // 25 rows at "between"
        [{ now: between }] = await ws.cluster.query<{ now: string }>('SELECT now()::text AS now');
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 1100)); // backup ids have one-second resolution
    }
  });
  afterAll(async () => ws?.cleanup());

  it('list-backups shows each backup retention status', async () => {
    const list = await ws.run(['list-backups', 'pg']);
    expect(list.stdout).toContain(`${ids[0]} - `);
    expect(list.stdout).toMatch(new RegExp(`${ids[0]} .* - OBSOLETE`));
    for (const id of ids.slice(1)) expect(list.stdout).toMatch(new RegExp(`${id} .* - VALID`));
    expect(list.stdout).toMatch(/FAILED \(backup .* failed: disk on fire\)/);
    const show = await ws.run(['show-backup', 'pg', ids[0]]);
    expect(show.stdout).toMatch(/Retention Policy\s+: OBSOLETE \(policy: REDUNDANCY 3\)/);
  });

  it('expire --dry-run says what would go and removes nothing; expire removes the oldest backup and the WAL only it needed', async () => {
    const before = await listing(ws.repoDir);
    const dry = await ws.run(['expire', 'pg', '--dry-run']);
    expect(dry.stdout).toContain(`would remove backup ${ids[0]}: 3 newer backups, and REDUNDANCY 3 keeps the 3 newest`);
    expect(dry.stdout).toMatch(/would remove wal [0-9A-F]{24}\.\.[0-9A-F]{24}/);
    // The cutoff is named as a WAL file, timeline included (it once read "segment 000000000000000B").
    expect(dry.stdout).toMatch(/older than [0-9A-F]{24}, the start of the oldest retained backup/);
    expect(await listing(ws.repoDir)).toEqual(before);

    const second = JSON.parse((await ws.run(['--json', 'show-backup', 'pg', ids[1]])).stdout);
    const walBefore = await walNames(ws.repoDir);
    const result = await ws.run(['expire', 'pg']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`removed backup ${ids[0]}`);
    const remaining = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string; status: string }[];
    expect(remaining.map((b) => b.id)).not.toContain(ids[0]);
    expect(remaining.filter((b) => b.status === 'FAILED')).toEqual([]); // the FAILED one was older than every retained backup
    const walAfter = await walNames(ws.repoDir);
    const startSegment = second.startWal.slice(8);
    expect(walAfter.filter((w) => !w.endsWith('.history') && w.slice(8, 24) < startSegment)).toEqual([]);
    expect(walBefore.filter((w) => !w.endsWith('.history') && w.slice(8, 24) < startSegment).length).toBeGreaterThan(0);
    expect(walAfter).toEqual(walBefore.filter((w) => w.endsWith('.history') || w.slice(8, 24) >= startSegment));
  });

  it('the kept backups still restore, to their end and to a point between them', async () => {
    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', ids[1], target, '--target-immediate', '--target-action', 'promote'])).exitCode).toBe(0);
    const a = await ws.startRestored(target);
    await waitPromoted(a);
    expect(await countRows(a)).toBe(20);
    await a.stop();

    const pitr = await ws.restoreTarget();
    const result = await ws.run(['restore', 'pg', 'latest', pitr, '--target-time', between, '--target-action', 'promote']);
    expect(result.stdout).toContain(`Restored backup ${ids[1]}`); // the newest backup that ends before the target
    const b = await ws.startRestored(pitr);
    await waitPromoted(b);
    expect(await countRows(b)).toBe(25);
    await b.stop();
  });

  it('a kept backup survives expiry; released, it goes; delete refuses to break minimum_redundancy', async () => {
    expect((await ws.run(['keep', 'pg', ids[1]])).stdout).toContain('KEEP:FULL');
    await ws.cluster.query(`INSERT INTO t VALUES (0)`);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    ids.push(JSON.parse(backup.stdout).id);
    await ws.run(['expire', 'pg']);
    let list = await ws.run(['list-backups', 'pg']);
    expect(list.stdout).toMatch(new RegExp(`${ids[1]} .* - KEEP:FULL`));
    expect((await ws.run(['keep', 'pg', ids[1], '--release'])).stdout).toContain('no longer kept');
    const expired = await ws.run(['expire', 'pg']);
    expect(expired.stdout).toContain(`removed backup ${ids[1]}`);
    list = await ws.run(['list-backups', 'pg']);
    expect(list.stdout).not.toContain(ids[1]);

    // minimum_redundancy 2 via a second config: deleting below it is refused unless forced.
    const strict = path.join(ws.dir, 'strict.yaml');
    await writeFile(strict, (await readFile(ws.configFile, 'utf8')).replace('minimum_redundancy: 1', 'minimum_redundancy: 3'));
    const refused = await pgharbor(['--config', strict, 'delete', 'pg', 'oldest'], { asPgUser: true });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/below minimum_redundancy 3/);
    expect(refused.stderr).toMatch(/HINT: .*--force/);
  });

  it('two backups at once: the second fails with the lock message', async () => {
    const slow = path.join(ws.dir, 'slow.yaml');
    await writeFile(slow, (await readFile(ws.configFile, 'utf8')).replace('immediate_checkpoint: true', 'immediate_checkpoint: true\n    max_rate: "1M"'));
    await ws.cluster.query(`CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g`);
    const first = pgharborProcess(['--config', slow, 'backup', 'pg'], { asPgUser: true });
    const lock = path.join(ws.repoDir, 'pg', 'locks', 'backup.lock');
    for (let i = 0; i < 100; i++) {
      if (await readFile(lock).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const second = await ws.run(['backup', 'pg']);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(/another backup of pg is running \(pid \d+ on .*, since /);
    first.kill('SIGINT');
    await first;
  });

  it('cron applies automatic retention, and a second run changes nothing', async () => {
    const auto = path.join(ws.dir, 'auto.yaml');
    await writeFile(auto, `state_dir: ./state\n${(await readFile(ws.configFile, 'utf8')).replace('retention_policy_mode: manual', 'retention_policy_mode: auto').replace('REDUNDANCY 3', 'REDUNDANCY 1')}`);
    const firstRun = await pgharbor(['--config', auto, 'cron'], { asPgUser: true });
    expect(firstRun.exitCode, firstRun.stderr).toBe(0);
    expect(firstRun.stdout).toMatch(/pg: streaming off retention auto: [1-9]\d* removed/);
    const after = await listing(ws.repoDir);
    const secondRun = await pgharbor(['--config', auto, 'cron'], { asPgUser: true });
    expect(secondRun.stdout).toMatch(/pg: streaming off retention auto: 0 removed/);
    expect(await listing(ws.repoDir)).toEqual(after);
    const status = await pgharbor(['--config', auto, 'status', 'pg'], { asPgUser: true });
    expect(status.stdout).toMatch(/Retention policy: REDUNDANCY 1/);
    expect(status.stdout).toMatch(/No. of available backups: 1/);
    expect(status.stdout).toMatch(/Cluster state: in production/);
    const json = JSON.parse((await pgharbor(['--config', auto, '--json', 'status', 'pg'], { asPgUser: true })).stdout);
    expect(json.repositories[0]).toMatchObject({ backups: 1, minimumRedundancySatisfied: true });
  });
});
