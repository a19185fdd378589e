#!/usr/bin/env node
// rsync method benchmark: a full `pgharbor backup` with method rsync (over a
// private sshd on loopback), then a second one with reuse_backup: link after
// changing 1% of the rows, side by side with a plain `rsync -a` of the data
// directory over the same ssh (the copy floor) and `pg_basebackup -Fp`.
// Prints wall times and how much the repository grew (du, hard links
// counted once). See bench/README.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCluster, chownToPgUser, pgOsUser, startSshd } from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/bin.cjs');
const SCALE = Number(process.env.SCALE ?? 50);
const PARTITIONS = Number(process.env.PARTITIONS ?? 100);
const JOBS = Number(process.env.JOBS ?? 1);
const user = pgOsUser();
const env = { ...process.env, HOME: os.tmpdir() };
delete env.NODE_EXTRA_CA_CERTS;
const log = (m) => process.stderr.write(`[rsync-bench] ${m}\n`);
const asPg = (cmd, args) => {
  const started = process.hrtime.bigint();
  const result = spawnSync(cmd, args, { env, uid: user.uid, gid: user.gid, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  if (process.env.BENCH_DEBUG) process.stderr.write(result.stderr);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout: result.stdout };
};
const du = (dir) => Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
const mib = (bytes) => (bytes / 1048576).toFixed(1);

const root = await mkdtemp(path.join(process.env.TARGET_ROOT ?? '/var/tmp', 'pgharbor-rsyncbench-'));
await chownToPgUser(root);
const configFile = path.join(root, 'pgharbor.yaml');
const sshd = await startSshd();
const cluster = await createCluster({
  rootDir: root,
  durable: true,
  settings: { archive_mode: 'on', archive_command: `'${process.execPath}' '${CLI}' --config '${configFile}' archive-push bench %p`, max_wal_size: '4GB', wal_recycle: 'off' },
});
try {
  const key = path.join(root, 'ssh_key');
  const known = path.join(root, 'known_hosts');
  copyFileSync(sshd.clientKeyFile, key);
  copyFileSync(sshd.knownHostsFile, known);
  await chownToPgUser(key);
  await chownToPgUser(known);
  const ssh = `ssh -p ${sshd.port} -i ${key} -o UserKnownHostsFile=${known} -o StrictHostKeyChecking=yes`;
  const repo = path.join(root, 'repo');
  writeFileSync(
    configFile,
    [
      'servers:',
      '  bench:',
      `    conninfo: "${cluster.conninfo}"`,
      '    method: rsync',
      `    ssh_command: "${ssh} ${sshd.user}@127.0.0.1"`,
      '    immediate_checkpoint: true',
      `    parallel_jobs: ${JOBS}`,
      '    repositories:',
      `      - { type: posix, path: ${repo} }`,
      '',
    ].join('\n'),
  );
  await chownToPgUser(configFile);

  log(`pgbench -i -s ${SCALE} --partitions ${PARTITIONS}`);
  await cluster.pgbench(['-i', '-s', String(SCALE), '-q', '--partitions', String(PARTITIONS), 'postgres']);
  await cluster.query('CHECKPOINT');
  const [{ dir }] = await cluster.query('SELECT current_setting(\'data_directory\') AS dir');
  const dataBytes = du(dir);
  log(`data directory ${mib(dataBytes)} MiB`);

  const rows = [];
  const floorDir = path.join(root, 'floor-rsync');
  execFileSync('sync');
  const floor = asPg('rsync', ['-a', '-e', ssh, '--exclude', 'pg_wal/*', '--exclude', 'postmaster.pid', `${sshd.user}@127.0.0.1:${dir}/`, `${floorDir}/`]);
  rows.push(['rsync_a_floor', floor.seconds, du(floorDir)]);
  rmSync(floorDir, { recursive: true, force: true });

  const bbDir = path.join(root, 'floor-pgbb');
  execFileSync('sync');
  const bb = asPg('/usr/lib/postgresql/15/bin/pg_basebackup', ['-d', cluster.conninfo, '-Fp', '-X', 'fetch', '--checkpoint=fast', '-D', bbDir]);
  rows.push(['pg_basebackup_Fp', bb.seconds, du(bbDir)]);
  rmSync(bbDir, { recursive: true, force: true });

  execFileSync('sync');
  const full = asPg(process.execPath, [CLI, '--config', configFile, '--json', ...(process.env.BENCH_DEBUG ? ['--log-level', 'debug'] : []), 'backup', 'bench']);
  const afterFull = du(repo);
  rows.push(['pgharbor_rsync_full', full.seconds, afterFull]);

  const changed = Math.round(SCALE * 100000 * 0.01);
  log(`changing 1% of the rows: ${changed} accounts`);
  await cluster.query(`UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= ${changed}`);
  await cluster.query('CHECKPOINT');
  execFileSync('sync');
  const second = asPg(process.execPath, [CLI, '--config', configFile, '--json', ...(process.env.BENCH_DEBUG ? ['--log-level', 'debug'] : []), 'backup', 'bench']);
  const manifest = JSON.parse(second.stdout);
  const afterSecond = du(repo);
  rows.push(['pgharbor_rsync_link_1pct', second.seconds, afterSecond - afterFull]);

  console.log(`\nrsync method, SCALE=${SCALE} (${mib(dataBytes)} MiB data dir, accounts in ${PARTITIONS} partitions), parallel_jobs ${JOBS}`);
  console.log(`${'label'.padEnd(28)} ${'seconds'.padStart(8)} ${'x floor'.padStart(8)} ${'repo growth MiB'.padStart(16)}`);
  for (const [label, seconds, bytes] of rows) console.log(`${label.padEnd(28)} ${seconds.toFixed(2).padStart(8)} ${(seconds / floor.seconds).toFixed(2).padStart(8)} ${mib(bytes).padStart(16)}`);
  console.log(`\nsecond backup: reuse ${manifest.reuse}, size ${mib(manifest.size)} MiB, reused ${mib(manifest.reusedSize ?? 0)} MiB, stored ${mib(manifest.storedSize)} MiB; repository grew ${mib(afterSecond - afterFull)} MiB (${((100 * (afterSecond - afterFull)) / afterFull).toFixed(1)}% of the full backup) in ${(second.seconds / full.seconds * 100).toFixed(0)}% of its time`);
} finally {
  await cluster.destroy().catch(() => {});
  await sshd.destroy().catch(() => {});
  if (!process.env.PGHARBOR_BENCH_KEEP) rmSync(root, { recursive: true, force: true });
}
