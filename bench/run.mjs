#!/usr/bin/env node
// pgharbor benchmark: backup and restore against pg_basebackup and the tar I/O floor,
// on a throwaway durable PostgreSQL 15 cluster. See bench/README.md.
//
// Plain ESM, no build step of its own: it needs the project built (`npx tsc -b tsconfig.build.json`)
// for packages/cli/dist/bin.cjs and @pgharbor/sandbox.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createCluster, startExistingCluster, chownToPgUser, pgOsUser } from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// PGHARBOR_CLI: time another build of the CLI (e.g. a scratch copy with a prototype fix) against the same anchors.
const CLI = path.resolve(process.env.PGHARBOR_CLI || path.join(REPO_ROOT, 'packages/cli/dist/bin.cjs'));
const TIME = '/usr/bin/time';
const MiB = 1024 * 1024;
const SERVER = 'bench';

// ---------------------------------------------------------------- parameters

const HELP = `usage: npm run bench [-- options]     (or: node bench/run.mjs [options])

Options (each also settable by the environment variable in brackets):
  --scale N          pgbench scale (SCALE, default 50; 100 is about 1.5 GB)
  --reps N           interleaved repetitions (REPS, default 3)
  --target-root DIR  where repos, copies and restores go (TARGET_ROOT, default: the bench's own
                     directory under /var/tmp, on the same disk as the cluster)
  --cluster-root DIR where the sandbox cluster lives (CLUSTER_ROOT, default /var/tmp)
  --restore-jobs L   pgharbor restore --jobs variants (RESTORE_JOBS, default "default 2 4"): "default"
                     passes no --jobs (pgharbor's default) and is labelled pgharbor_restore, N is
                     pgharbor_restore_jN
  --tests L          comma/space list of labels to run (TESTS, default all); dependencies are added
  --compression A    repository compression for pgharbor (COMPRESSION: none, lz4, zstd, gzip;
                     default: unset, i.e. pgharbor's default)
  --keep             keep the cluster data dir and the target dir at the end (PGHARBOR_BENCH_KEEP=1)
  --datadir DIR      reuse a data dir kept by an earlier --keep run instead of pgbench -i (DATADIR)
  --results DIR      results directory (RESULTS_DIR, default .bench-results/<timestamp>)
  (PGHARBOR_CLI=path/to/bin.cjs times another build of the CLI, e.g. a scratch copy with a fix)
  (PGHARBOR_CLI_BEFORE=path/to/bin.cjs adds the row pgharbor_backup_before: that build's backup, side by side)
  (QUIET_PSI=N [QUIET_WAIT=S]: before each measured command, wait up to S s (120) for CPU pressure < N%)
  -h, --help`;

const { values: flags } = parseArgs({
  options: {
    scale: { type: 'string' },
    reps: { type: 'string' },
    'target-root': { type: 'string' },
    'cluster-root': { type: 'string' },
    'restore-jobs': { type: 'string' },
    tests: { type: 'string' },
    keep: { type: 'boolean' },
    datadir: { type: 'string' },
    results: { type: 'string' },
    compression: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  allowPositionals: false,
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

const env = process.env;
const positiveInt = (name, v, dflt) => {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) die(`${name} must be a positive integer, got "${v}"`);
  return n;
};
const truthy = (v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false' && v.toLowerCase() !== 'no';

const P = {
  scale: positiveInt('SCALE', flags.scale ?? env.SCALE, 50),
  reps: positiveInt('REPS', flags.reps ?? env.REPS, 3),
  targetRoot: flags['target-root'] ?? env.TARGET_ROOT ?? '',
  clusterRoot: flags['cluster-root'] ?? env.CLUSTER_ROOT ?? (existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir()),
  // 0 stands for "default": no --jobs, what a user gets (4 for an uncompressed backup, 2 for a compressed one).
  restoreJobs: [...new Set((flags['restore-jobs'] ?? env.RESTORE_JOBS ?? 'default 2 4').split(/[\s,]+/).filter(Boolean).map((j) => (j === 'default' ? 0 : positiveInt('RESTORE_JOBS', j))))],
  tests: (flags.tests ?? env.TESTS ?? '').split(/[\s,]+/).filter(Boolean),
  keep: flags.keep || truthy(env.PGHARBOR_BENCH_KEEP),
  datadir: flags.datadir ?? env.DATADIR ?? '',
  results: flags.results ?? env.RESULTS_DIR ?? '',
  compression: flags.compression ?? env.COMPRESSION ?? '',
  quietPsi: Number(env.QUIET_PSI ?? 0),
  quietWait: Number(env.QUIET_WAIT ?? 120),
};

function die(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------- tests

const restoreLabel = (jobs) => (jobs === 0 ? 'pgharbor_restore' : `pgharbor_restore_j${jobs}`);

/** Backup phase: all read the cluster, write a fresh output. */
const BACKUP_TESTS = ['pgharbor_backup', 'pgharbor_backup_before', 'pgbb_plain', 'pgbb_tar', 'pgbb_tar_stdout', 'pgbb_tar_lz4', 'floor_tar_create'];
/** Another build of the CLI timed on the same data (e.g. main before a change): PGHARBOR_CLI_BEFORE. */
const CLI_BEFORE = process.env.PGHARBOR_CLI_BEFORE ?? '';
/** pg_basebackup's own lz4 (issue 9's reference): run by default only when pgharbor compresses with lz4 too. */
const LZ4_ONLY = ['pgbb_tar_lz4'];
/** Restore phase: all read what this rep's backup phase wrote. */
const RESTORE_TESTS = [...P.restoreJobs.map(restoreLabel), 'floor_tar_extract', 'floor_cp_a'];
const DEPENDS = { floor_tar_extract: 'floor_tar_create' };
for (const j of P.restoreJobs) DEPENDS[restoreLabel(j)] = 'pgharbor_backup';

let selected = new Set(P.tests.length ? P.tests : [...BACKUP_TESTS, ...RESTORE_TESTS].filter((t) => (P.compression === 'lz4' || !LZ4_ONLY.includes(t)) && (CLI_BEFORE || t !== 'pgharbor_backup_before')));
if (selected.has('pgharbor_backup_before') && !CLI_BEFORE) die('pgharbor_backup_before needs PGHARBOR_CLI_BEFORE (the other build\'s packages/cli/dist/bin.cjs)');
for (const t of selected) if (![...BACKUP_TESTS, ...RESTORE_TESTS].includes(t)) die(`unknown test "${t}" (known: ${[...BACKUP_TESTS, ...RESTORE_TESTS].join(', ')})`);
for (const t of [...selected]) if (DEPENDS[t]) selected.add(DEPENDS[t]);
const backupTests = BACKUP_TESTS.filter((t) => selected.has(t));
const restoreTests = RESTORE_TESTS.filter((t) => selected.has(t));

/** Rep r (0-based) starts at position r of the list and wraps around. */
const rotate = (list, r) => (list.length ? [...list.slice(r % list.length), ...list.slice(0, r % list.length)] : []);

// ---------------------------------------------------------------- state and cleanup

const state = {
  cluster: undefined, // the source cluster
  verifyCluster: undefined,
  benchRoot: undefined, // our own directory on the cluster disk (removed at the end unless --keep)
  targetDir: undefined, // our own directory inside TARGET_ROOT (removed at the end unless --keep)
  child: undefined, // the measured process (its own process group)
  stopping: false,
};

async function cleanup() {
  if (state.child?.pid) {
    try {
      process.kill(-state.child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await state.verifyCluster?.destroy().catch(() => {});
  if (state.cluster) {
    if (P.keep) await state.cluster.stop().catch(() => {});
    else await state.cluster.destroy().catch(() => {});
  }
  if (P.keep) {
    if (state.cluster) log(`kept (PGHARBOR_BENCH_KEEP): cluster data dir ${state.cluster.dataDir} (stopped; reuse with DATADIR=...)`);
    if (state.targetDir) log(`kept (PGHARBOR_BENCH_KEEP): target dir ${state.targetDir}`);
    return;
  }
  if (state.targetDir) await rm(state.targetDir, { recursive: true, force: true }).catch(() => {});
  if (state.benchRoot) await rm(state.benchRoot, { recursive: true, force: true }).catch(() => {});
}

function onSignal(sig) {
  if (state.stopping) {
    console.error(`\nbench: second ${sig}, exiting without cleanup`);
    process.exit(130);
  }
  state.stopping = true;
  console.error(`\nbench: ${sig}: stopping the running command, destroying the cluster and removing temp dirs...`);
  cleanup().finally(() => process.exit(130));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

// ---------------------------------------------------------------- helpers

const t0 = performance.now();
function log(msg) {
  const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  console.error(`[${s}s] ${msg}`);
}

/** 1-minute load average right after a run: other work on the machine shows up here. */
const loadavg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
/** CPU pressure (PSI "some avg10", %): the share of time runnable tasks waited for a CPU; '' where PSI is off. */
const cpuPressure = () => {
  try {
    return Number(/some avg10=([0-9.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))[1]);
  } catch {
    return NaN;
  }
};

/** QUIET_PSI=N: before each measured command wait (up to QUIET_WAIT s) until CPU pressure is below N%. */
async function waitForQuiet(label) {
  if (!(P.quietPsi > 0) || !Number.isFinite(cpuPressure())) return;
  const start = performance.now();
  while (cpuPressure() > P.quietPsi && performance.now() - start < P.quietWait * 1000 && !state.stopping) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const waited = (performance.now() - start) / 1000;
  if (waited > 1) log(`  (waited ${waited.toFixed(0)} s for CPU pressure <= ${P.quietPsi}% before ${label}; now ${cpuPressure()}%)`);
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();
}

function duBytes(p) {
  try {
    return Number(sh('du', ['-sb', p]).split(/\s+/)[0]);
  } catch {
    return NaN;
  }
}

async function pgDir(parent, name) {
  const dir = path.join(parent, name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { uid, gid } = pgOsUser();
  await chown(dir, uid, gid);
  return dir;
}

/** Run a command (not timed), wait, reject on failure. */
function run(cmd, args, { logFile, uid, cwd = '/' } = {}) {
  return new Promise((resolve, reject) => {
    const fd = logFile ? openSync(logFile, 'a') : 'ignore';
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], cwd, ...(uid !== undefined ? { uid } : {}) });
    if (typeof fd === 'number') closeSync(fd);
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? code})${logFile ? `; see ${logFile}` : ''}`))));
  });
}

/**
 * sync, then time one command under /usr/bin/time -v. Wall time is measured here
 * (hrtime around the spawn); RSS and CPU come from time -v (the whole waited-for tree,
 * RSS = the largest single process).
 */
async function measure(label, rep, argv, { okCodes = [0] } = {}) {
  if (state.stopping) throw new Error('stopping');
  await waitForQuiet(label);
  await run('sync', []);
  const base = path.join(LOGS, `${label}.rep${rep}`);
  const timeFile = `${base}.time`;
  const fd = openSync(`${base}.log`, 'w');
  const start = performance.now();
  const child = spawn(TIME, ['-v', '-o', timeFile, ...argv], { stdio: ['ignore', fd, fd], cwd: '/', detached: true });
  closeSync(fd);
  state.child = child;
  const [code, signal] = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c, s) => resolve([c, s]));
  });
  const wall = (performance.now() - start) / 1000;
  state.child = undefined;
  const tv = existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '';
  const field = (name) => Number(new RegExp(`${name}:\\s*([0-9.]+)`).exec(tv)?.[1] ?? NaN);
  const exit = /Exit status:\s*(\d+)/.exec(tv)?.[1];
  const rc = signal ? `sig${signal}` : exit !== undefined ? Number(exit) : code;
  const row = {
    label,
    rep,
    wall_s: wall,
    maxrss_kb: field('Maximum resident set size \\(kbytes\\)'),
    user_s: field('User time \\(seconds\\)'),
    sys_s: field('System time \\(seconds\\)'),
    out_bytes: NaN,
    rc,
    load1: loadavg(),
    cpu_psi10: cpuPressure(),
  };
  if (!okCodes.includes(rc)) {
    const tail = readFileSync(`${base}.log`, 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`${label} (rep ${rep}) failed with ${rc}; log ${base}.log:\n${tail}`);
  }
  log(`  ${label.padEnd(22)} ${wall.toFixed(2).padStart(7)} s  rss ${(row.maxrss_kb / 1024).toFixed(0).padStart(4)} MiB  user ${row.user_s.toFixed(2)} sys ${row.sys_s.toFixed(2)}  load ${row.load1} cpu-psi ${row.cpu_psi10}%`);
  return row;
}

// ---------------------------------------------------------------- statistics / report

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function summarize(rows, dataBytes) {
  const labels = [...BACKUP_TESTS, ...RESTORE_TESTS].filter((l) => rows.some((r) => r.label === l));
  const stats = new Map();
  for (const label of labels) {
    const rs = rows.filter((r) => r.label === label);
    const walls = rs.map((r) => r.wall_s);
    stats.set(label, {
      n: rs.length,
      median: median(walls),
      min: Math.min(...walls),
      max: Math.max(...walls),
      rss: Math.max(...rs.map((r) => r.maxrss_kb)) / 1024,
      user: median(rs.map((r) => r.user_s)),
      sys: median(rs.map((r) => r.sys_s)),
      cpu: median(rs.map((r) => r.user_s + r.sys_s)),
      out: median(rs.map((r) => r.out_bytes)),
    });
  }
  const ref = (label) => (RESTORE_TESTS.includes(label) ? 'floor_tar_extract' : 'pgbb_plain');
  const ratio = (a, b) => (stats.has(a) && stats.has(b) ? stats.get(a).median / stats.get(b).median : NaN);

  const lines = [];
  lines.push('| test | n | median s | min-max s | MiB/s | ratio | peak RSS MiB | CPU s | user / sys s | output MiB |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const label of labels) {
    const s = stats.get(label);
    const r = ratio(label, ref(label));
    lines.push(
      `| ${label} | ${s.n} | ${f(s.median)} | ${f(s.min)}-${f(s.max)} | ${f(dataBytes / MiB / s.median, 0)} | ${Number.isFinite(r) ? `${f(r)} x ${ref(label)}` : '-'} | ${f(s.rss, 0)} | ${f(s.cpu, 1)} | ${f(s.user, 1)} / ${f(s.sys, 1)} | ${f(s.out / MiB, 1)} |`,
    );
  }

  const targets = [];
  targets.push('| check | measured | target | verdict |');
  targets.push('|---|---|---|---|');
  const check = (name, value, limit, unit = 'x') => {
    if (!Number.isFinite(value)) return;
    const shown = unit === 'x' ? `${f(value)}x` : `${f(value, 0)} ${unit}`;
    const target = limit === undefined ? '(info)' : unit === 'x' ? `<= ${f(limit, 1)}x` : `< ${limit} ${unit}`;
    const verdict = limit === undefined ? '-' : (unit === 'x' ? value <= limit : value < limit) ? 'PASS' : 'FAIL';
    targets.push(`| ${name} | ${shown} | ${target} | ${verdict} |`);
  };
  check('pgharbor_backup / pgbb_plain', ratio('pgharbor_backup', 'pgbb_plain'), 1.2);
  check('pgharbor_backup / pgbb_tar', ratio('pgharbor_backup', 'pgbb_tar'));
  // Issue 17: an uncompressed backup at most as long as pg_basebackup's tar on stdout into a file; the build before, for comparison.
  check('pgharbor_backup / pgbb_tar_stdout', ratio('pgharbor_backup', 'pgbb_tar_stdout'), P.compression === 'none' ? 1.0 : undefined);
  check('pgharbor_backup / pgharbor_backup_before', ratio('pgharbor_backup', 'pgharbor_backup_before'));
  check('pgharbor_backup / floor_tar_create', ratio('pgharbor_backup', 'floor_tar_create'));
  // Issue 9: an lz4 backup next to pg_basebackup's own client-side lz4, within 1.3x and under 150 MB.
  if (P.compression === 'lz4') check('pgharbor_backup (lz4) / pgbb_tar_lz4', ratio('pgharbor_backup', 'pgbb_tar_lz4'), 1.3);
  else check('pgharbor_backup / pgbb_tar_lz4', ratio('pgharbor_backup', 'pgbb_tar_lz4'));
  if (P.compression === 'lz4' && stats.has('pgharbor_backup')) check('peak RSS pgharbor_backup (lz4) (MB = 10^6 B)', (stats.get('pgharbor_backup').rss * MiB) / 1e6, 150, 'MB');
  for (const j of P.restoreJobs) check(`${restoreLabel(j)} / floor_tar_extract`, ratio(restoreLabel(j), 'floor_tar_extract'), j === 0 ? 1.3 : undefined);
  // issue 9: a restore of an lz4 backup within 1.5x of cp -a + sync of the data dir.
  for (const j of P.restoreJobs) check(`${restoreLabel(j)} / floor_cp_a`, ratio(restoreLabel(j), 'floor_cp_a'), j === 0 && P.compression === 'lz4' ? 1.5 : undefined);
  for (const label of labels.filter((l) => l.startsWith('pgharbor_'))) {
    // issue 9 holds a restore of an lz4 backup to less memory than the others.
    const limit = P.compression === 'lz4' && label === restoreLabel(2) ? 150 : 200;
    check(`peak RSS ${label} (MB = 10^6 B)`, (stats.get(label).rss * MiB) / 1e6, limit, 'MB');
  }
  return { table: lines.join('\n'), targets: targets.join('\n') };
}

// ---------------------------------------------------------------- main

if (process.getuid?.() !== 0) die('run as root: pgharbor runs as root, pg_basebackup and PostgreSQL as the "postgres" OS user (runuser)');
if (!existsSync(TIME)) die(`${TIME} not found (apt-get install -y time)`);
if (!existsSync(CLI)) die(`${CLI} not found: build first (npx tsc -b tsconfig.build.json)`);

const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d\dZ$/, 'Z');
const RESULTS = path.resolve(P.results || path.join(REPO_ROOT, '.bench-results', stamp));
const LOGS = path.join(RESULTS, 'logs');
await mkdir(LOGS, { recursive: true });

const rows = [];
const meta = [];
let exitCode = 0;
try {
  // Our own directory, traversable by postgres; the sandbox makes its private root inside.
  state.benchRoot = await mkdtemp(path.join(P.clusterRoot, 'pgharbor-bench-'));
  await chmod(state.benchRoot, 0o755);
  const targetParent = P.targetRoot ? path.resolve(P.targetRoot) : state.benchRoot;
  await mkdir(targetParent, { recursive: true });
  state.targetDir = P.targetRoot ? await mkdtemp(path.join(targetParent, 'pgharbor-bench-target-')) : path.join(state.benchRoot, 'target');
  await mkdir(state.targetDir, { recursive: true });
  await chmod(state.targetDir, 0o755);

  // 1. the source cluster: durable (fsync on), wal_recycle off so pg_wal shrinks to a few segments
  //    after CHECKPOINT and the tar floor copies about what the tools copy.
  const settings = { wal_recycle: false, max_wal_size: '4GB', checkpoint_timeout: '30min' };
  let cluster;
  if (P.datadir) {
    log(`starting the kept data dir ${P.datadir}`);
    cluster = state.cluster = await startExistingCluster(P.datadir, { rootDir: state.benchRoot, durable: true, settings });
  } else {
    log(`creating a durable sandbox cluster under ${state.benchRoot}`);
    cluster = state.cluster = await createCluster({ rootDir: state.benchRoot, durable: true, settings });
    log(`pgbench -i -s ${P.scale}`);
    const t = performance.now();
    await cluster.pgbench(['-i', '-q', '-s', String(P.scale)]);
    log(`  pgbench -i took ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  await cluster.query('CHECKPOINT');
  const [{ count: accounts }] = await cluster.query('SELECT count(*)::bigint AS count FROM pgbench_accounts');
  const expectedAccounts = Number(accounts);
  if (!P.datadir && expectedAccounts !== P.scale * 100000) throw new Error(`source has ${expectedAccounts} accounts, expected ${P.scale * 100000}`);
  const scale = expectedAccounts / 100000;
  await run('sync', []);
  const dataBytes = duBytes(cluster.dataDir);
  const walBytes = duBytes(path.join(cluster.dataDir, 'pg_wal'));
  log(`data dir ${cluster.dataDir}: ${f(dataBytes / MiB, 0)} MiB (pg_wal ${f(walBytes / MiB, 0)} MiB), ${expectedAccounts} accounts`);

  const configFile = path.join(state.targetDir, 'pgharbor.yaml');
  const pgbbBin = path.join(cluster.pgBin, 'pg_basebackup');
  const fsOf = (p) => {
    try {
      return sh('df', ['--output=source,fstype', p]).split('\n')[1].trim().replace(/\s+/, ' ');
    } catch {
      return '?';
    }
  };
  meta.push(
    `- ${sh(path.join(cluster.pgBin, 'postgres'), ['--version'])}; node ${process.version}; ${sh('tar', ['--version']).split('\n')[0]}`,
    `- pgharbor ${sh(process.execPath, [CLI, '--version'])} (${CLI}); git ${(() => { try { return sh('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty']); } catch { return '?'; } })()}`,
    `- host ${os.hostname()} nproc=${os.cpus().length} mem=${f(os.totalmem() / 2 ** 30, 1)} GiB kernel=${os.release()}`,
    `- cluster ${cluster.dataDir} on ${fsOf(cluster.dataDir)}; targets ${state.targetDir} on ${fsOf(state.targetDir)}`,
    `- pgharbor repository compression: ${P.compression || "pgharbor's default (not set in the config)"}`,
    `- pgbench scale ${scale}; data dir ${f(dataBytes / MiB, 0)} MiB (pg_wal ${f(walBytes / MiB, 0)} MiB) at start = the MiB/s basis`,
    `- reps ${P.reps}, interleaved; order rotates per rep within the backup phase [${backupTests.join(', ')}] and the restore phase [${restoreTests.join(', ')}]`,
    `- fsync on (durable cluster), page cache warm (nothing dropped), \`sync\` before each measured command${P.quietPsi > 0 ? `; waited up to ${P.quietWait} s for CPU pressure < ${P.quietPsi}% before each` : ''}`,
  );

  // 2. the measurements
  for (let rep = 1; rep <= P.reps; rep++) {
    log(`rep ${rep}/${P.reps}`);
    const repDir = path.join(state.targetDir, `rep${rep}`);
    await mkdir(repDir, { mode: 0o755 });
    await chmod(repDir, 0o755);
    const repoDir = path.join(repDir, 'repo');
    const floorTar = path.join(repDir, 'floor.tar');
    await writeFile(
      configFile,
      [
        'servers:',
        `  ${SERVER}:`,
        `    conninfo: "${cluster.conninfo}"`,
        '    immediate_checkpoint: true',
        '    repositories:',
        `      - { type: posix, path: ${repoDir}${P.compression ? `, compression: ${P.compression}` : ''} }`,
        '',
      ].join('\n'),
    );

    const backupRuns = {
      pgharbor_backup: async (label) => {
        const row = await measure(label, rep, [process.execPath, CLI, '--config', configFile, '--json', 'backup', SERVER]);
        row.out_bytes = duBytes(repoDir);
        return row;
      },
      pgharbor_backup_before: async (label) => {
        // The same backup by another build (PGHARBOR_CLI_BEFORE) into a repository of its own.
        const beforeRepo = `${repoDir}-before`;
        const beforeConfig = `${configFile}.before.yaml`;
        await writeFile(beforeConfig, (await readFile(configFile, 'utf8')).replace(`path: ${repoDir}`, `path: ${beforeRepo}`));
        const row = await measure(label, rep, [process.execPath, CLI_BEFORE, '--config', beforeConfig, '--json', 'backup', SERVER]);
        row.out_bytes = duBytes(beforeRepo);
        await rm(beforeRepo, { recursive: true, force: true });
        return row;
      },
      pgbb_tar_stdout: async (label) => {
        // The tar on stdout into one file (what pgharbor relayed before it spoke BASE_BACKUP itself), made durable like the others.
        const parent = await pgDir(repDir, label);
        const out = path.join(parent, 'base.tar');
        const script = '"$1" -d "$2" -Ft -X fetch --checkpoint=fast -D - > "$3" && sync -f "$3"';
        const row = await measure(label, rep, ['runuser', '-u', 'postgres', '--', 'sh', '-c', script, 'sh', pgbbBin, cluster.conninfo, out]);
        row.out_bytes = duBytes(out);
        await rm(parent, { recursive: true, force: true });
        return row;
      },
      pgbb_plain: async (label) => {
        const parent = await pgDir(repDir, label);
        const out = path.join(parent, 'out');
        const row = await measure(label, rep, ['runuser', '-u', 'postgres', '--', pgbbBin, '-d', cluster.conninfo, '-Fp', '-X', 'fetch', '--checkpoint=fast', '-D', out]);
        row.out_bytes = duBytes(out);
        await rm(parent, { recursive: true, force: true });
        return row;
      },
      pgbb_tar: async (label) => {
        const parent = await pgDir(repDir, label);
        const out = path.join(parent, 'out');
        const row = await measure(label, rep, ['runuser', '-u', 'postgres', '--', pgbbBin, '-d', cluster.conninfo, '-Ft', '-X', 'fetch', '--checkpoint=fast', '-D', out]);
        row.out_bytes = duBytes(out);
        await rm(parent, { recursive: true, force: true });
        return row;
      },
      pgbb_tar_lz4: async (label) => {
        const parent = await pgDir(repDir, label);
        const out = path.join(parent, 'out');
        const row = await measure(label, rep, ['runuser', '-u', 'postgres', '--', pgbbBin, '-d', cluster.conninfo, '-Ft', '-X', 'fetch', '--checkpoint=fast', '--compress=client-lz4', '-D', out]);
        row.out_bytes = duBytes(out);
        await rm(parent, { recursive: true, force: true });
        return row;
      },
      floor_tar_create: async (label) => {
        // GNU tar exits 1 when a file changed while it was read (a live cluster); that is fine here.
        const script = 'tar -cf "$1" -C "$2" .; rc=$?; sync -f "$1" || exit 3; [ $rc -le 1 ]';
        const row = await measure(label, rep, ['sh', '-c', script, 'sh', floorTar, cluster.dataDir]);
        row.out_bytes = duBytes(floorTar);
        return row;
      },
    };
    for (const label of rotate(backupTests, rep - 1)) rows.push(await backupRuns[label](label));

    for (const label of rotate(restoreTests, rep - 1)) {
      const dest = await pgDir(repDir, `${label}.dest`);
      let row;
      if (label === 'floor_tar_extract') {
        row = await measure(label, rep, ['sh', '-c', 'tar -xf "$1" -C "$2" && sync -f "$2"', 'sh', floorTar, dest]);
      } else if (label === 'floor_cp_a') {
        // The data dir copied as it is (the cluster idles after its CHECKPOINT): what a restore of a compressed backup is held to.
        row = await measure(label, rep, ['sh', '-c', 'cp -a "$1/." "$2" && sync -f "$2"', 'sh', cluster.dataDir, dest]);
      } else {
        const jobs = P.restoreJobs.find((j) => restoreLabel(j) === label);
        const jobArgs = jobs === 0 ? [] : ['--jobs', String(jobs)];
        row = await measure(label, rep, [process.execPath, CLI, '--config', configFile, '--json', 'restore', SERVER, 'latest', dest, ...jobArgs]);
      }
      row.out_bytes = duBytes(dest);
      if (label.startsWith('pgharbor_') && rep === 1) await verifyRestore(label, dest, expectedAccounts);
      rows.push(row);
      await rm(dest, { recursive: true, force: true });
    }
    if (!(P.keep && rep === P.reps)) await rm(repDir, { recursive: true, force: true });
  }

  // 4. the report
  const header = ['label', 'rep', 'wall_s', 'maxrss_kb', 'user_s', 'sys_s', 'out_bytes', 'rc', 'load1', 'cpu_psi10'];
  await writeFile(
    path.join(RESULTS, 'raw.tsv'),
    [header.join('\t'), ...rows.map((r) => [r.label, r.rep, r.wall_s.toFixed(3), r.maxrss_kb, r.user_s, r.sys_s, r.out_bytes, r.rc, r.load1, r.cpu_psi10].join('\t'))].join('\n') + '\n',
  );
  const { table, targets } = summarize(rows, dataBytes);
  const md = [
    `# pgharbor bench ${stamp}`,
    '',
    ...meta,
    `- total run ${f((performance.now() - t0) / 1000, 0)} s; 1-min load average during the runs ${f(Math.min(...rows.map((r) => r.load1)), 1)}-${f(Math.max(...rows.map((r) => r.load1)), 1)} on ${os.cpus().length} CPUs, CPU pressure (PSI some avg10) ${f(Math.min(...rows.map((r) => r.cpu_psi10)), 0)}-${f(Math.max(...rows.map((r) => r.cpu_psi10)), 0)}% (other work on the machine; per run in raw.tsv)`,
    '',
    table,
    '',
    'Ratios: backup rows are divided by the median of `pgbb_plain`, restore rows by the median of `floor_tar_extract`.',
    'Peak RSS is the largest single process of the command tree (for pgharbor_backup: node; for a relay build, node or its pg_basebackup child). CPU s counts the whole tree.',
    '',
    '## Targets',
    '',
    targets,
    '',
  ].join('\n');
  await writeFile(path.join(RESULTS, 'summary.md'), md);
  await writeFile(path.join(RESULTS, 'meta.txt'), meta.join('\n') + '\n');
  console.log(md);
  log(`results in ${RESULTS} (raw.tsv, summary.md, logs/)`);
} catch (error) {
  if (!state.stopping) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    console.error(`bench: logs in ${LOGS}`);
    exitCode = 1;
  }
} finally {
  if (!state.stopping) {
    log('cleaning up');
    await cleanup();
  }
}
process.exitCode = exitCode;

/** 3. A restore that does not start, or lost rows, must not be measured as fast. */
async function verifyRestore(label, dest, expectedAccounts) {
  log(`  verifying ${label}: starting PostgreSQL on the restored dir`);
  await chownToPgUser(dest);
  const restored = (state.verifyCluster = await startExistingCluster(dest, { rootDir: state.benchRoot }));
  try {
    const [{ count }] = await restored.query('SELECT count(*)::bigint AS count FROM pgbench_accounts');
    if (Number(count) !== expectedAccounts) throw new Error(`${label}: restored pgbench_accounts has ${count} rows, expected ${expectedAccounts}`);
    log(`  verified ${label}: started, pgbench_accounts has ${count} rows`);
  } finally {
    await restored.destroy();
    state.verifyCluster = undefined;
  }
}
