import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, SANDBOX_PASSWORD, startExistingCluster, type SandboxCluster } from './index.js';

describe('sandbox cluster', () => {
  let a: SandboxCluster;
  let b: SandboxCluster;

  beforeAll(async () => {
    [a, b] = await Promise.all([createCluster({ settings: { work_mem: '8MB' } }), createCluster()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.destroy(), b?.destroy()]);
  }, 60_000);

  it('runs two independent clusters with the requested settings', async () => {
    expect(a.port).not.toBe(b.port);
    expect(a.conninfo).toBe(`host=${a.socketDir} port=${a.port} user=postgres dbname=postgres`);
    const [row] = await a.query<{ work_mem: string; fsync: string; wal_level: string }>(
      `SELECT current_setting('work_mem') AS work_mem, current_setting('fsync') AS fsync,
              current_setting('wal_level') AS wal_level`,
    );
    expect(row).toEqual({ work_mem: '8MB', fsync: 'off', wal_level: 'replica' });
    const [cs] = await b.query<{ data_checksums: string }>('SHOW data_checksums');
    expect(cs.data_checksums).toBe('on');
  });

  it('runs pgbench and checksums identical tables identically', async () => {
    await Promise.all([a.pgbench(['-i', '-s', '1', '-q']), b.pgbench(['-i', '-s', '1', '-q'])]);
    const [count] = await a.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_branches');
    expect(count.n).toBe('1');
    const sumA = await a.tableChecksum('postgres', 'pgbench_accounts', 'aid');
    const sumB = await b.tableChecksum('postgres', 'pgbench_accounts', 'aid');
    expect(sumA).toMatch(/^[0-9a-f]{32}$/);
    expect(sumA).toBe(sumB);
    await b.query('UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 1');
    expect(await b.tableChecksum('postgres', 'pgbench_accounts', 'aid')).not.toBe(sumA);
  }, 60_000);

  it('stops and starts again on the same port, keeping data', async () => {
    const port = a.port;
    await a.stop();
    expect(a.isRunning()).toBe(false);
    await expect(a.query('SELECT 1')).rejects.toThrow();
    await a.start();
    expect(a.isRunning()).toBe(true);
    expect(a.port).toBe(port);
    const [count] = await a.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_accounts');
    expect(count.n).toBe('100000');
  }, 60_000);

  it('requires the password over TCP', async () => {
    const tcp = (password: string) =>
      new pg.Client({ host: '127.0.0.1', port: a.port, user: 'postgres', database: 'postgres', password });
    const bad = tcp('wrong');
    await expect(bad.connect()).rejects.toThrow(/password authentication failed/);
    const good = tcp(SANDBOX_PASSWORD);
    await good.connect();
    expect((await good.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await good.end();
  });

  it('starts an existing data directory without deleting it on destroy', async () => {
    await b.stop();
    const ext = await startExistingCluster(b.dataDir);
    expect(ext.port).not.toBe(b.port); // the old port in postgresql.auto.conf was replaced
    const [count] = await ext.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_branches');
    expect(count.n).toBe('1');
    await ext.destroy();
    expect(ext.isRunning()).toBe(false);
    expect(existsSync(ext.socketDir)).toBe(false);
    expect(existsSync(`${b.dataDir}/PG_VERSION`)).toBe(true);
  }, 60_000);

  it('reports the server log when startup fails', async () => {
    await expect(createCluster({ settings: { shared_buffers: 'bogus' } })).rejects.toThrow(/shared_buffers/);
  }, 60_000);
});
