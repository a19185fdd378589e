import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

interface BackupJson {
  id: string;
  type: string;
  parent?: string;
  size: number;
  storedSize: number;
  reusedSize?: number;
}

async function backup(ws: Workspace, type: string): Promise<BackupJson> {
  const result = await ws.run(['--json', 'backup', 'pg', '--type', type]);
  expect(result.stderr + result.stdout).not.toMatch(/^$/);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as BackupJson;
}

/** Checksums of the pgbench tables plus the tables the scenario adds and drops. */
async function contents(cluster: Workspace['cluster']): Promise<Record<string, string>> {
  const out = await pgbenchChecksums(cluster);
  const tables = await cluster.query("SELECT string_agg(tablename, ',' ORDER BY tablename) AS t FROM pg_tables WHERE schemaname = 'public'");
  out.tables = String(tables[0].t);
  for (const extra of ['scratch', 'fresh']) {
    if (out.tables.split(',').includes(extra)) out[extra] = await cluster.tableChecksum('postgres', extra, 'id');
  }
  return out;
}

async function restoreAndCompare(ws: Workspace, id: string, expected: Record<string, string>): Promise<void> {
  const target = await ws.restoreTarget();
  const restored = await ws.run(['restore', 'pg', id, target]);
  expect(restored.exitCode, restored.stderr).toBe(0);
  const cluster = await ws.startRestored(target);
  expect(await contents(cluster)).toEqual(expected);
  await cluster.stop();
}

/**
 * full → incr → incr → diff with block maps, against a real cluster: each
 * restores to exactly what the source held at its backup, and an incr
 * after a 1% update stores a small fraction of a full.
 */
describe.each([
  ['plain', ''],
  ['lz4 + encryption', ', compression: lz4, encryption: { passphrase: { from_file: ./passphrase } }'],
])('incremental chain (%s)', (_name, repoOptions) => {
  let ws: Workspace;
  const states: { backup: BackupJson; data: Record<string, string> }[] = [];

  beforeAll(async () => {
    ws = await createWorkspace();
    await writeFile(path.join(ws.dir, 'passphrase'), 'incremental chain test passphrase\n', { mode: 0o600 });
    await writeFile(ws.configFile, (await readFile(ws.configFile, 'utf8')).replace('- { type: posix, path: ./repo }', `- { type: posix, path: ./repo${repoOptions} }`));
    await ws.cluster.pgbench(['-i', '-s', '3', '-q', 'postgres']);
    await ws.cluster.query('CREATE TABLE scratch AS SELECT generate_series(1, 20000) AS id, md5(random()::text) AS v');
    await ws.cluster.query('CREATE TABLE doomed AS SELECT generate_series(1, 20000) AS id');
    const full = await backup(ws, 'full');
    states.push({ backup: full, data: await contents(ws.cluster) });

    await ws.cluster.pgbench(['-t', '500', '-c', '2', 'postgres']);
    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0');
    await ws.cluster.query('TRUNCATE scratch');
    await ws.cluster.query('DROP TABLE doomed');
    await ws.cluster.query('CREATE TABLE fresh AS SELECT generate_series(1, 5000) AS id');
    const incr1 = await backup(ws, 'incr');
    states.push({ backup: incr1, data: await contents(ws.cluster) });

    await ws.cluster.query('INSERT INTO scratch SELECT generate_series(1, 3000), md5(random()::text)');
    await ws.cluster.query('UPDATE pgbench_branches SET bbalance = bbalance + 3');
    const incr2 = await backup(ws, 'incr');
    states.push({ backup: incr2, data: await contents(ws.cluster) });

    await ws.cluster.query('DELETE FROM fresh WHERE id > 2500');
    await ws.cluster.query('VACUUM fresh');
    const diff = await backup(ws, 'diff');
    states.push({ backup: diff, data: await contents(ws.cluster) });
  });
  afterAll(async () => ws?.cleanup());

  it('records type and parent, and an incr stores a fraction of a full', () => {
    const [full, incr1, incr2, diff] = states.map((s) => s.backup);
    expect(full).toMatchObject({ type: 'full' });
    expect(full.parent).toBeUndefined();
    expect(incr1).toMatchObject({ type: 'incr', parent: full.id });
    expect(incr2).toMatchObject({ type: 'incr', parent: incr1.id });
    expect(diff).toMatchObject({ type: 'diff', parent: full.id });
    expect(incr2.storedSize / full.storedSize).toBeLessThan(0.2);
    expect(incr1.reusedSize).toBeGreaterThan(0);
  });

  it('restores every backup of the chain to the data it was taken from', async () => {
    for (const state of states) await restoreAndCompare(ws, state.backup.id, state.data);
  });
});
