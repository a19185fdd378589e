import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgBinForMajor, startExistingCluster } from '@pgharbor/sandbox';
import { INCREMENTAL_MAGIC, incrementalHeaderLength } from '@pgharbor/core';
import { createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';
import { answerPrefix, answerSuffix, startWalsenderProxy, wire, type WalsenderProxy } from './walsender-proxy.js';

/**
 * PostgreSQL 17+ incremental backups from WAL summaries: the server sends
 * only changed blocks (INCREMENTAL.* files) and pgharbor completes them
 * from the parent's block maps. Each backup of the chain is restored,
 * started and compared with the source at backup time.
 */

/** A major's server programs (PGHARBOR_PG<major>_BIN, Debian's, or the npm package), undefined when not installed. */
function serverBin(major: number): string | undefined {
  try {
    return pgBinForMajor(major);
  } catch {
    return undefined;
  }
}

interface Taken {
  id: string;
  type: string;
  parent?: string;
  /** What pgharbor logged as received from the server. */
  received: number;
  log: string;
}

async function backup(ws: Workspace, type: string): Promise<Taken> {
  const result = await ws.run(['--json', 'backup', 'pg', '--type', type]);
  expect(result.exitCode, result.stderr).toBe(0);
  const json = JSON.parse(result.stdout) as { id: string; type: string; parent?: string };
  const received = /received (\d+) bytes from the server/.exec(result.stderr);
  expect(received, result.stderr).not.toBeNull();
  return { ...json, received: Number(received![1]), log: result.stderr };
}

async function contents(cluster: Workspace['cluster']): Promise<Record<string, string>> {
  const out = await pgbenchChecksums(cluster);
  const tables = await cluster.query("SELECT string_agg(tablename, ',' ORDER BY tablename) AS t FROM pg_tables WHERE schemaname = 'public'");
  out.tables = String(tables[0].t);
  for (const extra of ['scratch', 'fresh']) {
    if (out.tables.split(',').includes(extra)) out[extra] = await cluster.tableChecksum('postgres', extra, 'id');
  }
  return out;
}

async function restoreAndCompare(ws: Workspace, pgBin: string, id: string, expected: Record<string, string>): Promise<void> {
  const target = await ws.restoreTarget();
  const restored = await ws.run(['restore', 'pg', id, target]);
  expect(restored.exitCode, restored.stderr).toBe(0);
  const cluster = await startExistingCluster(target, { pgBin });
  try {
    expect(await contents(cluster)).toEqual(expected);
  } finally {
    await cluster.destroy();
  }
}

const SUMMARIES = /incremental from WAL summaries since/;

describe.each([
  [17, ''],
  // Super blocks sealed for their place and compressed, as the checksum path stores them.
  [18, ', compression: zstd, encryption: { passphrase: { from_file: ./passphrase } }'],
])('PostgreSQL %i incremental from WAL summaries (repository%s)', (major, repoOptions) => {
  const pgBin = serverBin(major);
  let ws: Workspace;
  const states: { taken: Taken; data: Record<string, string> }[] = [];

  beforeAll(async () => {
    if (!pgBin) return;
    ws = await createWorkspace({ cluster: { pgBin, settings: { summarize_wal: 'on' } } });
    await writeFile(path.join(ws.dir, 'passphrase'), 'wal summaries test passphrase\n', { mode: 0o600 });
    await writeFile(ws.configFile, (await readFile(ws.configFile, 'utf8')).replace('- { type: posix, path: ./repo }', `- { type: posix, path: ./repo${repoOptions} }`));
    // Scale 15 (~230 MB): the WAL segment every backup carries (16 MiB) stays small beside a full.
    await ws.cluster.pgbench(['-i', '-s', '15', '-q', 'postgres']);
    await ws.cluster.query('CREATE TABLE scratch AS SELECT generate_series(1, 20000) AS id, md5(random()::text) AS v');
    await ws.cluster.query('CREATE TABLE doomed AS SELECT generate_series(1, 20000) AS id');
    states.push({ taken: await backup(ws, 'full'), data: await contents(ws.cluster) });

    await ws.cluster.pgbench(['-t', '500', '-c', '2', 'postgres']);
    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 15000'); // 1% of the rows
    await ws.cluster.query('TRUNCATE scratch');
    await ws.cluster.query('DROP TABLE doomed');
    await ws.cluster.query('CREATE TABLE fresh AS SELECT generate_series(1, 5000) AS id');
    states.push({ taken: await backup(ws, 'incr'), data: await contents(ws.cluster) });

    await ws.cluster.query('INSERT INTO scratch SELECT generate_series(1, 3000), md5(random()::text)');
    await ws.cluster.query('UPDATE pgbench_branches SET bbalance = bbalance + 3');
    states.push({ taken: await backup(ws, 'incr'), data: await contents(ws.cluster) });

    await ws.cluster.pgbench(['-t', '200', '-c', '2', 'postgres']);
    states.push({ taken: await backup(ws, 'diff'), data: await contents(ws.cluster) });
  }, 600_000);

  afterAll(async () => {
    await ws?.cleanup();
  });

  it.skipIf(!pgBin)('takes incr, incr and diff from WAL summaries, receiving a fraction of a full', () => {
    const [full, incr1, incr2, diff] = states.map((s) => s.taken);
    expect(full.type).toBe('full');
    expect([incr1.type, incr2.type, diff.type]).toEqual(['incr', 'incr', 'diff']);
    expect(incr1.parent).toBe(full.id);
    expect(diff.parent).toBe(full.id);
    for (const taken of [incr1, incr2, diff]) expect(taken.log).toMatch(SUMMARIES);
    expect(full.log).not.toMatch(SUMMARIES);
    console.log(`PostgreSQL ${major}: bytes received: full ${full.received}, incr ${incr1.received}, incr ${incr2.received}, diff ${diff.received}`);
    expect(incr1.received).toBeLessThan(full.received * 0.2);
  });

  it.skipIf(!pgBin)(
    'restores each backup of the chain to what the source held',
    async () => {
      for (const state of states) await restoreAndCompare(ws, pgBin!, state.taken.id, state.data);
    },
    600_000,
  );

  it.skipIf(!pgBin)('verifies every backup of the chain', async () => {
    for (const state of states) {
      const verified = await ws.run(['verify', 'pg', state.taken.id]);
      expect(verified.exitCode, verified.stderr + verified.stdout).toBe(0);
    }
  }, 300_000);
});

describe('PostgreSQL 17 with summarize_wal off', () => {
  const pgBin = serverBin(17);
  let ws: Workspace;

  afterAll(async () => {
    await ws?.cleanup();
  });

  it.skipIf(!pgBin)(
    'falls back to block checksums with one INFO line, and the backup restores',
    async () => {
      ws = await createWorkspace({ cluster: { pgBin } });
      await ws.cluster.pgbench(['-i', '-s', '2', '-q', 'postgres']);
      await backup(ws, 'full');
      await ws.cluster.pgbench(['-t', '200', '-c', '2', 'postgres']);
      const incr = await backup(ws, 'incr');
      expect(incr.type).toBe('incr');
      expect(incr.log).not.toMatch(SUMMARIES);
      expect(incr.log.match(/by block checksums, not WAL summaries: summarize_wal is off/g)).toHaveLength(1);
      await restoreAndCompare(ws, pgBin!, incr.id, await contents(ws.cluster));

      // Turned on after a checkpoint: the summarizer starts at that checkpoint's redo, after the parent's start,
      // so the server has no summaries back to it, refuses, and the checksum diff serves.
      await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
      await ws.cluster.query('CHECKPOINT');
      await ws.cluster.query('ALTER SYSTEM SET summarize_wal = on');
      await ws.cluster.query('SELECT pg_reload_conf()');
      await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
      const refused = await backup(ws, 'incr');
      expect(refused.log).not.toMatch(SUMMARIES);
      expect(refused.log.match(/by block checksums, not WAL summaries: the server refused the incremental backup: .*WAL summaries are required/g), refused.log).toHaveLength(1);
      await restoreAndCompare(ws, pgBin!, refused.id, await contents(ws.cluster));

      // The next incr has a parent inside the summarized range: summaries serve.
      await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
      const summarized = await backup(ws, 'incr');
      expect(summarized.log).toMatch(SUMMARIES);
      await restoreAndCompare(ws, pgBin!, summarized.id, await contents(ws.cluster));
    },
    600_000,
  );
});

/** A ustar entry holding `content` (binary). */
function tarEntry(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write('0000600\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header[156] = 0x30;
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return Buffer.concat([header, content, Buffer.alloc(Math.ceil(content.length / 512) * 512 - content.length)]);
}

/** An incremental file as PostgreSQL 17 writes it, with `blocks` numbers and `sent` blocks of data. */
function incrementalFile(blocks: number[], truncation: number, options: { magic?: number; sent?: number } = {}): Buffer {
  const head = Buffer.alloc(incrementalHeaderLength(blocks.length));
  head.writeUInt32LE(options.magic ?? INCREMENTAL_MAGIC, 0);
  head.writeUInt32LE(blocks.length, 4);
  head.writeUInt32LE(truncation, 8);
  blocks.forEach((block, i) => head.writeUInt32LE(block, 12 + 4 * i));
  return Buffer.concat([head, Buffer.alloc((options.sent ?? blocks.length) * 8192, 0x5a)]);
}

describe('PostgreSQL 17: hostile incremental files in the stream', () => {
  const pgBin = serverBin(17);
  let ws: Workspace;
  let config: string;
  let relation: string;
  let proxy: WalsenderProxy | undefined;
  const known: string[] = [];

  beforeAll(async () => {
    if (!pgBin) return;
    ws = await createWorkspace({ cluster: { pgBin, settings: { summarize_wal: 'on' } } });
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    relation = String((await ws.cluster.query("SELECT pg_relation_filepath('pgbench_accounts') AS p"))[0].p);
    await backup(ws, 'full');
    config = await readFile(ws.configFile, 'utf8');
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    await ws?.cleanup();
  });

  const named = (file: string) => file.replace(/\/([^/]+)$/, '/INCREMENTAL.$1');

  it.skipIf(!pgBin).each<[string, () => { name: string; content: Buffer }, RegExp]>([
    ['bad magic', () => ({ name: named(relation), content: incrementalFile([], 10, { magic: 0x12345678 }) }), /has magic number 0x12345678, not 0xd3ae1f0d/],
    ['a block count beyond the file', () => ({ name: named(relation), content: incrementalFile([0, 1, 2], 2) }), /claims 3 blocks of a file of 2/],
    ['block numbers out of range', () => ({ name: named(relation), content: incrementalFile([0, 500], 10) }), /sends block 500, beyond its length of 10 blocks/],
    ['block numbers unsorted', () => ({ name: named(relation), content: incrementalFile([4, 2], 10) }), /sends block 2 after block 4/],
    ['truncated blocks', () => ({ name: named(relation), content: incrementalFile([1, 2], 10, { sent: 1 }) }), /is 16384 bytes long, but its header \(2 blocks\) makes it 24576/],
    ['a file the parent does not hold', () => ({ name: 'base/5/INCREMENTAL.999999', content: incrementalFile([], 1) }), /base\/5\/999999 names a file the parent backup .* does not hold/],
  ])('%s: the backup is FAILED, saying what is wrong', async (_what, make, expected) => {
    await proxy?.close();
    const { name, content } = make();
    if (known.length === 0) known.push(...(JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string }[]).map((b) => b.id));
    proxy = await startWalsenderProxy(ws.cluster, {
      kind: 'answer',
      answer: () => Buffer.concat([answerPrefix(), wire.copyData('d', Buffer.concat([tarEntry(name, content), Buffer.alloc(1024)])), answerSuffix()]),
    });
    await writeFile(ws.configFile, config.replace('    immediate_checkpoint: true\n', `    immediate_checkpoint: true\n    streaming_conninfo: "host=127.0.0.1 port=${proxy.port} user=postgres dbname=postgres sslmode=disable"\n`));
    const result = await ws.run(['--json', 'backup', 'pg', '--type', 'incr']);
    expect(result.exitCode).toBe(1);
    expect(proxy.commands[0]).toMatch(/INCREMENTAL/);
    expect(result.stderr).toMatch(expected);
    expect(result.stderr).toMatch(/HINT: /);
    const list = await ws.run(['--json', 'list-backups', 'pg']);
    const backups = JSON.parse(list.stdout) as { id: string; status: string; type: string }[];
    const added = backups.filter((b) => !known.includes(b.id));
    known.push(...added.map((b) => b.id));
    expect(added.map((b) => [b.status, b.type])).toEqual([['FAILED', 'incr']]);
  });
});
