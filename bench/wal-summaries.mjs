#!/usr/bin/env node
// PostgreSQL 17+ incremental from WAL summaries: a full `pgharbor backup`,
// `pgbench -t $TXNS -c 2`, then a diff with summarize_wal = on (only changed
// blocks sent) and the same diff with it off (every byte received, blocks
// compared by checksum). Prints bytes received from the server and wall
// time of each, and the repository growth. See bench/README.md.
//   SCALE=100 TXNS=2000 PGHARBOR_PG17_BIN=... node bench/wal-summaries.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sandbox from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = process.env.PGHARBOR_CLI ?? path.join(REPO_ROOT, 'packages/cli/dist/bin.cjs');
const SCALE = Number(process.env.SCALE ?? 100);
const TXNS = Number(process.env.TXNS ?? 2000);
const MAJOR = Number(process.env.MAJOR ?? 17);
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const log = (m) => process.stderr.write(`[wal-summaries-bench] ${m}\n`);
const mib = (bytes) => (bytes / 1048576).toFixed(1);
const du = (dir) => Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);

function backup(configFile, type) {
  execFileSync('sync');
  const started = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, CLI, '--config', configFile, '--json', 'backup', 'bench', '--type', type], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`pgharbor backup --type ${type} failed (${result.status}): ${result.stderr}`);
  const received = Number(/received (\d+) bytes from the server/.exec(result.stderr)?.[1]);
  const summaries = /incremental from WAL summaries/.test(result.stderr);
  const rssMb = Number(result.stderr.trim().split('\n').at(-1)) / 1024;
  return { seconds, received, summaries, rssMb, manifest: JSON.parse(result.stdout) };
}

const root = await mkdtemp(path.join(process.env.TARGET_ROOT ?? '/var/tmp', 'pgharbor-summbench-'));
await sandbox.chownToPgUser(root);
const configFile = path.join(root, 'pgharbor.yaml');
const repo = path.join(root, 'repo');
const cluster = await sandbox.createCluster({ rootDir: root, pgBin: sandbox.pgBinForMajor(MAJOR), durable: true, settings: { max_wal_size: '4GB', wal_recycle: 'off', summarize_wal: 'on' } });
try {
  writeFileSync(configFile, ['servers:', '  bench:', `    conninfo: "${cluster.conninfo}"`, '    immediate_checkpoint: true', '    repositories:', `      - { type: posix, path: ${repo} }`, ''].join('\n'));
  log(`PostgreSQL ${MAJOR}, pgbench -i -s ${SCALE}`);
  await cluster.pgbench(['-i', '-s', String(SCALE), '-q', 'postgres']);
  await cluster.query('CHECKPOINT');
  log(`data directory ${mib(du(cluster.dataDir))} MiB`);
  const full = backup(configFile, 'full');
  const afterFull = du(repo);
  log(`pgbench -t ${TXNS} -c 2`);
  await cluster.pgbench(['-t', String(TXNS), '-c', '2', 'postgres']);
  const fromSummaries = backup(configFile, 'diff');
  const afterSummaries = du(repo);
  await cluster.query('ALTER SYSTEM SET summarize_wal = off');
  await cluster.query('SELECT pg_reload_conf()');
  const byChecksums = backup(configFile, 'diff');
  const afterChecksums = du(repo);
  const rows = [
    ['full', full, afterFull],
    [`diff, WAL summaries${fromSummaries.summaries ? '' : ' (NOT USED)'}`, fromSummaries, afterSummaries - afterFull],
    [`diff, block checksums${byChecksums.summaries ? ' (summaries used?)' : ''}`, byChecksums, afterChecksums - afterSummaries],
  ];
  console.log(`PostgreSQL ${MAJOR}, pgbench scale ${SCALE}, after pgbench -t ${TXNS} -c 2`);
  console.log('backup                          received MiB   % of full   wall s   repo added MiB    peak RSS MB');
  for (const [name, r, growth] of rows) {
    console.log(`${name.padEnd(32)}${mib(r.received).padStart(12)}${((100 * r.received) / full.received).toFixed(1).padStart(12)}${r.seconds.toFixed(2).padStart(9)}${mib(growth).padStart(18)}${r.rssMb.toFixed(0).padStart(14)}`);
  }
} finally {
  await cluster.destroy().catch(() => {});
  await rm(root, { recursive: true, force: true });
}
