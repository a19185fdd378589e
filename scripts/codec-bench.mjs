#!/usr/bin/env node
// Compression, encryption, verify and delta-restore figures for pgharbor, next to
// pg_basebackup -Ft --compress=client-lz4|client-zstd, pgBackRest at the same
// compression (process-max 2, when /usr/bin/pgbackrest exists) and cp -a + sync, in
// one run on one durable sandbox cluster (pgbench data). Needs the project built.
//
//   node scripts/codec-bench.mjs            # SCALE=50 REPS=2
//   SCALE=100 REPS=3 node scripts/codec-bench.mjs
//
// Every command writes into a fresh directory under /var/tmp (the real disk) and
// `sync` runs before each measured command. Wall time, peak RSS (/usr/bin/time),
// stored size; the best of REPS.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile, chown } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCluster, startExistingCluster, chownToPgUser, pgOsUser, pgBinDir } from '@pgharbor/sandbox';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'packages/cli/dist/bin.cjs');
const SCALE = Number(process.env.SCALE ?? 50);
const REPS = Number(process.env.REPS ?? 2);
const MiB = 1024 * 1024;
const user = pgOsUser();
const bin = pgBinDir();

function time(argv, options = {}) {
  execFileSync('sync');
  const started = performance.now();
  const result = spawnSync('/usr/bin/time', ['-f', '@@%M', ...argv], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...options.env },
    ...(options.asPg ? { uid: user.uid, gid: user.gid, cwd: '/' } : {}),
  });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) throw new Error(`${argv.join(' ')} failed: ${String(result.stderr).slice(-2000)}`);
  return { seconds, stderr: result.stderr };
}

function du(dir) {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

const results = [];
function record(label, rep, seconds, bytes, extra = '') {
  results.push({ label, rep, seconds, bytes, extra });
  console.log(`${label.padEnd(28)} rep ${rep}: ${seconds.toFixed(2)} s${bytes ? `, ${(bytes / MiB).toFixed(1)} MiB` : ''} ${extra}`);
}

const root = await mkdtemp('/var/tmp/pgharbor-codec-bench-');
await chownToPgUser(root);
// pgBackRest's backup waits for its WAL in its own archive: while pgBackRest runs, archive_command
// pushes there (into the repository its config names at the moment). Otherwise it is `true`, so that
// no backlog grows in pg_wal and the cp -a floor copies the same tree pgharbor restores (pgharbor's
// backups fetch their WAL).
const PGBACKREST = existsSync('/usr/bin/pgbackrest') && !process.env.NO_PGBACKREST ? '/usr/bin/pgbackrest' : undefined;
const pgbrConf = path.join(root, 'pgbackrest.conf');
const archiving = PGBACKREST ? { archive_mode: 'on', archive_command: '/bin/true' } : {};
const setArchiveCommand = async (command) => {
  await cluster.query(`ALTER SYSTEM SET archive_command = '${command}'`);
  await cluster.query('SELECT pg_reload_conf()');
};
const cluster = await createCluster({ rootDir: root, durable: true, settings: { wal_recycle: 'off', ...archiving } });
try {
  console.log(`pgbench -i -s ${SCALE} ...`);
  await cluster.pgbench(['-i', '-s', String(SCALE), '-q', 'postgres']);
  await cluster.query('CHECKPOINT');
  const dataBytes = du(cluster.dataDir);
  console.log(`data dir ${(dataBytes / MiB).toFixed(0)} MiB; load ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim()}`);

  const passFile = path.join(root, 'pass');
  await writeFile(passFile, 'bench passphrase\n', { mode: 0o600 });
  const variants = {
    none: 'compression: none',
    lz4: 'compression: lz4',
    'zstd-1': 'compression: zstd, compression_level: 1',
    'zstd-3': 'compression: zstd, compression_level: 3',
    'gzip-1': 'compression: gzip, compression_level: 1',
    'zstd-1+aes': `compression: zstd, compression_level: 1, encryption: { passphrase: { from_file: ${passFile} } }`,
  };
  const config = async (dir, settings) => {
    const file = path.join(dir, 'pgharbor.yaml');
    await writeFile(file, `servers:\n  bench:\n    conninfo: "${cluster.conninfo}"\n    immediate_checkpoint: true\n    repositories:\n      - { type: posix, path: ${dir}/repo, ${settings} }\n`);
    return file;
  };

  const only = process.env.VARIANTS?.split(/[ ,]+/);
  for (let rep = 1; rep <= REPS; rep++) {
    for (const [name, settings] of Object.entries(variants)) {
      if (only && !only.includes(name)) continue;
      const dir = await mkdtemp(path.join(root, `${name}-`));
      await chownToPgUser(dir);
      const file = await config(dir, settings);
      const backup = time([process.execPath, CLI, '--config', file, 'backup', 'bench']);
      record(`pgharbor backup ${name}`, rep, backup.seconds, du(path.join(dir, 'repo')), `peak RSS ${backup.stderr.match(/@@(\d+)/)?.[1] / 1024 | 0} MiB`);
      const target = path.join(dir, 'restore');
      const restore = time([process.execPath, CLI, '--config', file, 'restore', 'bench', 'latest', target]);
      record(`pgharbor restore ${name}`, rep, restore.seconds, 0, `peak RSS ${restore.stderr.match(/@@(\d+)/)?.[1] / 1024 | 0} MiB`);
      if (name === 'zstd-1' || name === 'zstd-1+aes' || name === 'lz4') {
        const verify = time([process.execPath, CLI, '--config', file, 'verify', 'bench', 'latest']);
        record(`pgharbor verify ${name}`, rep, verify.seconds, 0, `peak RSS ${verify.stderr.match(/@@(\d+)/)?.[1] / 1024 | 0} MiB`);
      }
      if (name === 'zstd-1') {
        // Delta: the restored copy with a few rows changed (small tables) and a file deleted, vs. a full restore.
        await chownToPgUser(target);
        const restored = await startExistingCluster(target, { durable: true });
        await restored.query('UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1');
        await restored.query('UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid <= 3');
        await restored.stop();
        const delta = time([process.execPath, CLI, '--config', file, '--json', 'restore', 'bench', 'latest', target, '--delta']);
        record(`pgharbor restore --delta`, rep, delta.seconds, 0);
        const full = path.join(dir, 'full');
        const again = time([process.execPath, CLI, '--config', file, 'restore', 'bench', 'latest', full]);
        record(`pgharbor restore (full, same)`, rep, again.seconds, 0);
      }
      await rm(dir, { recursive: true, force: true });
    }
    for (const method of only ? [] : ['client-lz4', 'client-zstd']) {
      const dir = await mkdtemp(path.join(root, `pgbb-${method}-`));
      await chownToPgUser(dir);
      const bb = time([path.join(bin, 'pg_basebackup'), '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-Ft', '-X', 'fetch', '--checkpoint=fast', `--compress=${method}`, '-D', path.join(dir, 'out')], { asPg: true });
      record(`pg_basebackup -Ft ${method}`, rep, bb.seconds, du(path.join(dir, 'out')));
      await rm(dir, { recursive: true, force: true });
    }
    // pgBackRest at the same settings: a fresh repository each time (stanza-create), process-max 2.
    const pgbrVariants = { none: 'compress-type=none', lz4: 'compress-type=lz4', 'zst-1': 'compress-type=zst\ncompress-level=1', 'zst-3': 'compress-type=zst\ncompress-level=3', 'gz-1': 'compress-type=gz\ncompress-level=1' };
    if (PGBACKREST && !only) await setArchiveCommand(`${PGBACKREST} --config=${pgbrConf} --stanza=bench archive-push %p`);
    for (const [name, settings] of PGBACKREST && !only ? Object.entries(pgbrVariants) : []) {
      const dir = await mkdtemp(path.join(root, `pgbr-${name}-`));
      await chownToPgUser(dir);
      await writeFile(pgbrConf, `[global]\nrepo1-path=${dir}/repo\n${settings}\nprocess-max=2\nstart-fast=y\nlog-path=${dir}\nlock-path=${dir}\nlog-level-console=warn\nlog-level-file=off\n\n[bench]\npg1-path=${cluster.dataDir}\npg1-port=${cluster.port}\npg1-socket-path=${cluster.socketDir}\npg1-user=postgres\n`);
      await chown(pgbrConf, user.uid, user.gid);
      const pgbr = (...args) => [PGBACKREST, `--config=${pgbrConf}`, '--stanza=bench', ...args];
      time(pgbr('stanza-create'), { asPg: true });
      const backup = time(pgbr('--type=full', 'backup'), { asPg: true });
      record(`pgbackrest backup ${name}`, rep, backup.seconds, du(path.join(dir, 'repo', 'backup')), `peak RSS ${backup.stderr.match(/@@(\d+)/)?.[1] / 1024 | 0} MiB`);
      const target = path.join(dir, 'restore');
      await mkdir(target, { mode: 0o700 });
      await chownToPgUser(target);
      const restore = time(pgbr(`--pg1-path=${target}`, 'restore'), { asPg: true });
      record(`pgbackrest restore ${name}`, rep, restore.seconds, 0, `peak RSS ${restore.stderr.match(/@@(\d+)/)?.[1] / 1024 | 0} MiB`);
      await rm(dir, { recursive: true, force: true });
    }
    if (only) continue;
    if (PGBACKREST) {
      await setArchiveCommand('/bin/true');
      await cluster.query('CHECKPOINT'); // the segments pgBackRest archived go: pg_wal as at the start
    }
    const copy = path.join(root, 'cp-copy');
    const cp = time(['sh', '-c', 'cp -a "$1" "$2" && sync -f "$2"', 'sh', cluster.dataDir, copy]);
    record('cp -a + sync', rep, cp.seconds, du(copy)); // what was copied: the data dir as it is now
    await rm(copy, { recursive: true, force: true });
  }
  console.log('\nbest of', REPS, '(data dir', (dataBytes / MiB).toFixed(0), 'MiB):');
  const labels = [...new Set(results.map((r) => r.label))];
  for (const label of labels) {
    const best = results.filter((r) => r.label === label).sort((a, b) => a.seconds - b.seconds)[0];
    console.log(`| ${label} | ${best.seconds.toFixed(2)} | ${((dataBytes / MiB) / best.seconds).toFixed(0)} | ${best.bytes ? (best.bytes / MiB).toFixed(1) : '-'} | ${best.extra} |`);
  }
} finally {
  await cluster.destroy().catch(() => {});
  await rm(root, { recursive: true, force: true });
}
