#!/usr/bin/env node
// Incremental backup benchmark: a full `pgharbor backup`, then
// `pgbench -t $TXNS -c 2`, then `pgharbor backup --type incr`. Prints the
// bytes each backup stored and its wall time, then the wall time of a
// restore of the full and of the full + incr chain. See bench/README.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCluster, chownToPgUser } from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = process.env.PGHARBOR_CLI ?? path.join(REPO_ROOT, 'packages/cli/dist/bin.cjs');
const SCALE = Number(process.env.SCALE ?? 100);
const TXNS = Number(process.env.TXNS ?? 2000);
const COMPRESSION = process.env.COMPRESSION ?? 'none';
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const log = (m) => process.stderr.write(`[incremental-bench] ${m}\n`);
const mib = (bytes) => (bytes / 1048576).toFixed(1);
const du = (dir) => Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
function timed(args) {
  execFileSync('sync');
  const started = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, CLI, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`pgharbor ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  const rssKb = Number(result.stderr.trim().split('\n').at(-1));
  return { seconds, stdout: result.stdout, rssMb: rssKb / 1024 };
}

const root = await mkdtemp(path.join(process.env.TARGET_ROOT ?? '/var/tmp', 'pgharbor-incrbench-'));
await chownToPgUser(root);
const configFile = path.join(root, 'pgharbor.yaml');
const repo = path.join(root, 'repo');
const cluster = await createCluster({ rootDir: root, durable: true, settings: { max_wal_size: '4GB', wal_recycle: 'off' } });
try {
  writeFileSync(
    configFile,
    ['servers:', '  bench:', `    conninfo: "${cluster.conninfo}"`, '    immediate_checkpoint: true', '    repositories:', `      - { type: posix, path: ${repo}, compression: ${COMPRESSION} }`, ''].join('\n'),
  );
  log(`pgbench -i -s ${SCALE}`);
  await cluster.pgbench(['-i', '-s', String(SCALE), '-q', 'postgres']);
  await cluster.query('CHECKPOINT');
  const dataBytes = du(cluster.dataDir);
  log(`data directory ${mib(dataBytes)} MiB; compression ${COMPRESSION}`);

  const full = timed(['--config', configFile, '--json', 'backup', 'bench', '--type', 'full']);
  const fullManifest = JSON.parse(full.stdout);
  const repoAfterFull = du(repo);
  log(`pgbench -t ${TXNS} -c 2`);
  await cluster.pgbench(['-t', String(TXNS), '-c', '2', 'postgres']);
  const incr = timed(['--config', configFile, '--json', 'backup', 'bench', '--type', 'incr']);
  const incrManifest = JSON.parse(incr.stdout);
  const repoGrowth = du(repo) - repoAfterFull;

  const restore = (id, name) => {
    const target = path.join(root, name);
    mkdirSync(target, { mode: 0o700 });
    const result = timed(['--config', configFile, '--json', 'restore', 'bench', id, target]);
    execFileSync('rm', ['-rf', target]);
    return result;
  };
  const restoreFull = restore(fullManifest.id, 'restore-full');
  const restoreChain = restore(incrManifest.id, 'restore-chain');

  const rows = [
    ['full backup', full.seconds, fullManifest.storedSize, full.rssMb],
    [`incr backup after pgbench -t ${TXNS} -c 2`, incr.seconds, incrManifest.storedSize, incr.rssMb],
    ['restore full', restoreFull.seconds, undefined, restoreFull.rssMb],
    ['restore full + incr', restoreChain.seconds, undefined, restoreChain.rssMb],
  ];
  const out = [
    `pgharbor incremental bench: scale ${SCALE} (${mib(dataBytes)} MiB data directory), compression ${COMPRESSION}, ${os.cpus().length} CPUs`,
    '| step | wall s | stored MiB | peak RSS MB |',
    '|---|---|---|---|',
    ...rows.map(([name, s, bytes, rss]) => `| ${name} | ${s.toFixed(2)} | ${bytes === undefined ? '' : mib(bytes)} | ${rss.toFixed(0)} |`),
    `incr stored / full stored: ${(incrManifest.storedSize / fullManifest.storedSize * 100).toFixed(2)}% (repository grew ${mib(repoGrowth)} MiB; incr reused ${mib(incrManifest.reusedSize ?? 0)} MiB of ${mib(incrManifest.size)} MiB)`,
    `restore full + incr / restore full: ${(restoreChain.seconds / restoreFull.seconds).toFixed(2)}x`,
  ];
  console.log(out.join('\n'));
} finally {
  await cluster.destroy().catch(() => {});
  if (!process.env.PGHARBOR_BENCH_KEEP) await rm(root, { recursive: true, force: true });
}
