#!/usr/bin/env node
// pgharbor engine bench (issue 17, "Targets"): every target row next to its anchor
// (pg_basebackup, pgBackRest) on the same data in one run. See bench/README.md.
//
//   npm run bench:engine -- --scale 100
//
// Plain ESM, no build step of its own: it needs the project built (npm run build).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createCluster, startExistingCluster, chownToPgUser, pgOsUser } from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.resolve(process.env.PGHARBOR_CLI || path.join(REPO_ROOT, 'packages/cli/dist/bin.cjs'));
const TIME = '/usr/bin/time';
const PGBR = process.env.PGBR_BIN || '/usr/bin/pgbackrest';
const MiB = 1024 * 1024;
const SERVER = 'bench';
const STANZA = 'bench';

const HELP = `usage: npm run bench:engine -- [options]     (or: node bench/engine.mjs [options])

Prints issue 17's target rows, each next to its anchor, from one run on one data set:
full backups (none, lz4) vs pg_basebackup -Ft (plain, client-lz4) and pgBackRest full lz4
process-max=2; after pgbench -t 2000 -c 2 an incremental vs pgBackRest block incremental;
restores (full lz4, full + incr, delta) vs pgBackRest restore --process-max=2; peak RSS of
every row. Rows whose feature is not in this build print "n/a (feature not landed)".

Options:
  --scale N          pgbench scale (SCALE, default 100: about 1.5 GB; 300: 4.5 GB)
  --reps N           interleaved repetitions of the full-backup and full-restore rows (REPS, default 1)
  --digests L        also time pgharbor's full backup/restore rows with each file digest in L
                     (DIGESTS, e.g. "sha256 blake3"; PGHARBOR_FILE_DIGEST, see docs/repository-format.md)
  --cluster-root DIR where the cluster, repositories and restores live (CLUSTER_ROOT, default /var/tmp)
  --results DIR      results directory (RESULTS_DIR, default .bench-results/engine-<timestamp>)
  --keep             keep the cluster and the repositories at the end
  -h, --help
Needs root, PostgreSQL 15 binaries, /usr/bin/time, and pgBackRest (apt-get install -y pgbackrest,
or WITH_BENCH_TOOLS=1 scripts/install-system-deps.sh).`;

const { values: flags } = parseArgs({
  options: {
    scale: { type: 'string' },
    reps: { type: 'string' },
    digests: { type: 'string' },
    'cluster-root': { type: 'string' },
    results: { type: 'string' },
    keep: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}
const env = process.env;
const P = {
  scale: Number(flags.scale ?? env.SCALE ?? 100),
  reps: Number(flags.reps ?? env.REPS ?? 1),
  digests: (flags.digests ?? env.DIGESTS ?? '').split(/[\s,]+/).filter(Boolean),
  clusterRoot: flags['cluster-root'] ?? env.CLUSTER_ROOT ?? '/var/tmp',
  results: flags.results ?? env.RESULTS_DIR ?? '',
  keep: Boolean(flags.keep),
};
for (const [k, v] of [['scale', P.scale], ['reps', P.reps]]) if (!Number.isInteger(v) || v < 1) die(`--${k} must be a positive integer`);
for (const d of P.digests) if (!['sha256', 'blake3'].includes(d)) die(`--digests: unknown digest "${d}" (sha256, blake3)`);

function die(msg) {
  console.error(`bench:engine: ${msg}`);
  process.exit(2);
}
const t0 = performance.now();
function log(msg) {
  console.error(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
}
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();
const duBytes = (p) => {
  try {
    return Number(sh('du', ['-sb', p]).split(/\s+/)[0]);
  } catch {
    return NaN;
  }
};
const loadavg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

const state = { cluster: undefined, verify: undefined, root: undefined, child: undefined, stopping: false };
async function cleanup() {
  if (state.child?.pid) {
    try {
      process.kill(-state.child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await state.verify?.destroy().catch(() => {});
  if (P.keep) {
    await state.cluster?.stop().catch(() => {});
    if (state.root) log(`kept ${state.root}`);
    return;
  }
  await state.cluster?.destroy().catch(() => {});
  if (state.root) await rm(state.root, { recursive: true, force: true }).catch(() => {});
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (state.stopping) process.exit(130);
    state.stopping = true;
    console.error(`\nbench:engine: ${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

async function pgDir(parent, name) {
  const dir = path.join(parent, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { uid, gid } = pgOsUser();
  await chown(dir, uid, gid);
  return dir;
}

/** Run (untimed); resolves with stdout+stderr, rejects on a non-zero exit unless allowed. */
function run(cmd, args, { uid, env: extra, allowFail = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: '/', env: { ...process.env, ...extra }, ...(uid !== undefined ? { uid, gid: pgOsUser().gid } : {}) });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 || allowFail ? resolve({ code, out }) : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${out.slice(-2000)}`))));
  });
}

/** sync, then time one command under /usr/bin/time -v: wall, CPU and the peak RSS of its largest process. */
async function measure(label, argv, { env: extra, okCodes = [0] } = {}) {
  if (state.stopping) throw new Error('stopping');
  await state.quiet?.(); // no WAL archiving left running under the measured command
  await run('sync', []);
  const base = path.join(LOGS, label.replace(/[^\w.-]+/g, '_'));
  const timeFile = `${base}.time`;
  const fd = openSync(`${base}.log`, 'a');
  const start = performance.now();
  const child = spawn(TIME, ['-v', '-o', timeFile, ...argv], { stdio: ['ignore', fd, fd], cwd: '/', detached: true, env: { ...process.env, ...extra } });
  closeSync(fd);
  state.child = child;
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  state.child = undefined;
  const wall = (performance.now() - start) / 1000;
  const tv = existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '';
  const field = (name) => Number(new RegExp(`${name}:\\s*([0-9.]+)`).exec(tv)?.[1] ?? NaN);
  const rc = Number(/Exit status:\s*(\d+)/.exec(tv)?.[1] ?? code);
  const row = { label, wall, rssMb: (field('Maximum resident set size \\(kbytes\\)') * 1024) / 1e6, cpu: field('User time \\(seconds\\)') + field('System time \\(seconds\\)'), rc, load: loadavg(), log: `${base}.log` };
  if (!okCodes.includes(rc)) throw new Error(`${label} failed (${rc}); see ${base}.log:\n${readFileSync(`${base}.log`, 'utf8').split('\n').slice(-15).join('\n')}`);
  log(`  ${label.padEnd(34)} ${wall.toFixed(2).padStart(7)} s  rss ${row.rssMb.toFixed(0).padStart(4)} MB  cpu ${row.cpu.toFixed(2)} s  load ${row.load}`);
  return row;
}

// ---------------------------------------------------------------- setup

if (process.getuid?.() !== 0) die('run as root (PostgreSQL, pg_basebackup and pgBackRest run as the postgres OS user)');
if (!existsSync(TIME)) die(`${TIME} not found (apt-get install -y time)`);
if (!existsSync(CLI)) die(`${CLI} not found: npm run build first`);
if (!existsSync(PGBR)) die(`${PGBR} not found: apt-get install -y pgbackrest (or WITH_BENCH_TOOLS=1 scripts/install-system-deps.sh)`);

const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d\dZ$/, 'Z');
const RESULTS = path.resolve(P.results || path.join(REPO_ROOT, '.bench-results', `engine-${stamp}`));
const LOGS = path.join(RESULTS, 'logs');
await mkdir(LOGS, { recursive: true });

/** label -> rows (one per rep) */
const rows = new Map();
const add = (row) => rows.set(row.label, [...(rows.get(row.label) ?? []), row]);
/** label -> why the row has no figure */
const missing = new Map();
const info = new Map();
let exitCode = 0;

try {
  state.root = await mkdtemp(path.join(P.clusterRoot, 'pgharbor-engine-'));
  await chmod(state.root, 0o755);
  const pgbrDir = await pgDir(state.root, 'pgbackrest');
  for (const sub of ['log', 'lock', 'spool']) await pgDir(pgbrDir, sub);
  const pgbrConf = path.join(pgbrDir, 'pgbackrest.conf');
  const settings = {
    wal_recycle: false,
    max_wal_size: '4GB',
    checkpoint_timeout: '30min',
    archive_mode: 'on',
    // pgBackRest needs the archive for its own backups; pgharbor's basebackup fetches its WAL itself.
    archive_command: `${PGBR} --config=${pgbrConf} --stanza=${STANZA} archive-push %p`,
  };
  log(`creating a durable cluster under ${state.root}`);
  const cluster = (state.cluster = await createCluster({ rootDir: state.root, durable: true, settings }));
  const pgVersion = sh(path.join(cluster.pgBin, 'postgres'), ['--version']);

  /**
   * A fresh pgBackRest repository `name`: its stanza is created through a
   * config of its own, which then replaces the one archive_command reads
   * (rename), so that archive-push never writes into it before the stanza.
   */
  let pgbrRepos = 0;
  async function pgbrRepo(name, extra = '') {
    // A new directory each time: archive-push may still be writing into the previous one.
    const repo = await pgDir(state.root, `${name}-${++pgbrRepos}`);
    const next = `${pgbrConf}.next`;
    await writeFile(
      next,
      [
        '[global]',
        'repo1-type=posix',
        `repo1-path=${repo}`,
        'repo1-retention-full=9999',
        'compress-type=lz4',
        'process-max=2',
        'start-fast=y',
        'archive-async=n',
        `log-path=${pgbrDir}/log`,
        `lock-path=${pgbrDir}/lock`,
        `spool-path=${pgbrDir}/spool`,
        'log-level-console=warn',
        'log-level-file=info',
        extra,
        '',
        `[${STANZA}]`,
        `pg1-path=${cluster.dataDir}`,
        `pg1-port=${cluster.port}`,
        `pg1-socket-path=${cluster.socketDir}`,
        'pg1-user=postgres',
        '',
      ].join('\n'),
    );
    await chownToPgUser(next);
    await run(PGBR, [`--config=${next}`, `--stanza=${STANZA}`, 'stanza-create'], { uid: pgOsUser().uid });
    await rename(next, pgbrConf);
    return repo;
  }
  const pgbr = (...args) => ['runuser', '-u', 'postgres', '--', PGBR, `--config=${pgbrConf}`, `--stanza=${STANZA}`, ...args];

  /** A pgharbor config with one posix repository. */
  async function harborConfig(name, compression) {
    const repo = path.join(state.root, name);
    await rm(repo, { recursive: true, force: true });
    const file = path.join(state.root, `${name}.yaml`);
    await writeFile(file, ['servers:', `  ${SERVER}:`, `    conninfo: "${cluster.conninfo}"`, '    immediate_checkpoint: true', '    repositories:', `      - { type: posix, path: ${repo}, compression: ${compression} }`, ''].join('\n'));
    return { repo, file };
  }
  const harbor = (config, ...args) => [process.execPath, CLI, '--config', config.file, '--json', ...args];

  /**
   * Wait until every completed WAL segment is archived: pgBackRest's
   * archive-push must not run under another row. pg_switch_wal() completes
   * the current segment (its .ready file exists when it returns); the
   * archiver is idle when no .ready file is left (last_archived_wal is no
   * measure: a .backup file may be archived after a later segment).
   */
  const archiveIdle = async () => {
    await cluster.query('SELECT pg_switch_wal()');
    for (let waited = 0; ; waited += 200) {
      const [{ ready }] = await cluster.query("SELECT count(*)::int AS ready FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'");
      if (ready === 0) return;
      if (waited > 600_000) throw new Error(`WAL archiving still had ${ready} segments to go after 10 minutes (pgBackRest log: ${pgbrDir}/log)`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  // The stanza exists before any WAL is written, so that segments are archived as they complete.
  await pgbrRepo('pgbr-full');
  log(`pgbench -i -s ${P.scale}`);
  await cluster.pgbench(['-i', '-q', '-s', String(P.scale)]);
  await archiveIdle();
  await cluster.query('CHECKPOINT'); // archived segments go (wal_recycle off): the data dir is what the tools copy
  state.quiet = archiveIdle;
  await run('sync', []);
  const dataBytes = duBytes(cluster.dataDir);
  log(`data dir ${(dataBytes / MiB).toFixed(0)} MiB`);
  const pgbb = path.join(cluster.pgBin, 'pg_basebackup');

  async function verifyRestore(label, dest, expect) {
    await chownToPgUser(dest);
    const restored = (state.verify = await startExistingCluster(dest, { rootDir: state.root, settings: { archive_mode: 'off' } }));
    try {
      const [got] = await restored.query('SELECT (SELECT count(*) FROM pgbench_accounts)::text AS accounts, (SELECT count(*) FROM pgbench_history)::text AS history, (SELECT sum(abalance) FROM pgbench_accounts)::text AS balance');
      if (JSON.stringify(got) !== JSON.stringify(expect)) throw new Error(`${label}: restored data ${JSON.stringify(got)}, expected ${JSON.stringify(expect)}`);
      log(`  verified ${label}: PostgreSQL started on it, data equal`);
    } finally {
      await restored.destroy();
      state.verify = undefined;
    }
  }
  const sourceData = async () => (await cluster.query('SELECT (SELECT count(*) FROM pgbench_accounts)::text AS accounts, (SELECT count(*) FROM pgbench_history)::text AS history, (SELECT sum(abalance) FROM pgbench_accounts)::text AS balance'))[0];
  const before = await sourceData();

  // ---------------------------------------------------------------- full backups and restores (rotating order per rep)
  const fullLz4 = await harborConfig('harbor-lz4', 'lz4');
  const fullNone = await harborConfig('harbor-none', 'none');
  const digestRuns = P.digests.map((d) => ({ digest: d, config: undefined }));
  for (let rep = 1; rep <= P.reps; rep++) {
    log(`rep ${rep}/${P.reps}: full backups`);
    const backups = {
      pgharbor_full_none: async (label) => {
        const c = await harborConfig('harbor-none', 'none');
        add(await measure(label, harbor(c, 'backup', SERVER)));
      },
      pgharbor_full_lz4: async (label) => {
        const c = await harborConfig('harbor-lz4', 'lz4');
        const row = await measure(label, harbor(c, 'backup', SERVER));
        row.bytes = duBytes(c.repo);
        add(row);
      },
      pgbb_tar: async (label) => {
        const out = await pgDir(state.root, 'pgbb');
        add(await measure(label, ['runuser', '-u', 'postgres', '--', pgbb, '-d', cluster.conninfo, '-Ft', '-X', 'fetch', '--checkpoint=fast', '-D', path.join(out, 'out')]));
        await rm(out, { recursive: true, force: true });
      },
      pgbb_tar_lz4: async (label) => {
        const out = await pgDir(state.root, 'pgbb');
        add(await measure(label, ['runuser', '-u', 'postgres', '--', pgbb, '-d', cluster.conninfo, '-Ft', '-X', 'fetch', '--checkpoint=fast', '--compress=client-lz4', '-D', path.join(out, 'out')]));
        await rm(out, { recursive: true, force: true });
      },
      pgbr_full_lz4_pm2: async (label) => {
        await pgbrRepo('pgbr-full');
        add(await measure(label, pgbr('--type=full', 'backup')));
      },
    };
    for (const d of digestRuns) {
      backups[`pgharbor_full_lz4_digest_${d.digest}`] = async (label) => {
        d.config = await harborConfig(`harbor-lz4-${d.digest}`, 'lz4');
        add(await measure(label, harbor(d.config, 'backup', SERVER), { env: { PGHARBOR_FILE_DIGEST: d.digest } }));
      };
    }
    const order = Object.keys(backups);
    for (const label of [...order.slice((rep - 1) % order.length), ...order.slice(0, (rep - 1) % order.length)]) await backups[label](label);

    log(`rep ${rep}/${P.reps}: full restores`);
    const restores = {
      pgharbor_restore_full_lz4: async (label) => {
        const dest = await pgDir(state.root, 'dest');
        add(await measure(label, harbor(fullLz4, 'restore', SERVER, 'latest', dest)));
        if (rep === 1) await verifyRestore(label, dest, before);
      },
      pgharbor_restore_full_none: async (label) => {
        const dest = await pgDir(state.root, 'dest');
        add(await measure(label, harbor(fullNone, 'restore', SERVER, 'latest', dest)));
      },
      pgbr_restore_lz4_pm2: async (label) => {
        const dest = await pgDir(state.root, 'dest');
        add(await measure(label, pgbr(`--pg1-path=${dest}`, '--process-max=2', 'restore')));
      },
    };
    for (const d of digestRuns) {
      restores[`pgharbor_restore_full_lz4_digest_${d.digest}`] = async (label) => {
        const dest = await pgDir(state.root, 'dest');
        add(await measure(label, harbor(d.config, 'restore', SERVER, 'latest', dest), { env: { PGHARBOR_FILE_DIGEST: d.digest } }));
      };
    }
    const rorder = Object.keys(restores);
    for (const label of [...rorder.slice((rep - 1) % rorder.length), ...rorder.slice(0, (rep - 1) % rorder.length)]) await restores[label](label);
    await rm(path.join(state.root, 'dest'), { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- the chain: full, pgbench -t 2000 -c 2, incremental
  log('chain: fulls with block incremental (pgBackRest) and lz4 (pgharbor), then pgbench -t 2000 -c 2');
  const chain = await harborConfig('harbor-chain', 'lz4');
  add(await measure('pgharbor_chain_full_lz4', harbor(chain, 'backup', SERVER)));
  const pgbrChainRepo = await pgbrRepo('pgbr-chain', 'beta=y\nrepo1-bundle=y\nrepo1-block=y');
  add(await measure('pgbr_chain_full_lz4_block', pgbr('--type=full', 'backup')));
  // The full restored now: the target of the delta restore after the change.
  const deltaHarbor = await pgDir(state.root, 'delta-harbor');
  add(await measure('pgharbor_chain_restore_full', harbor(chain, 'restore', SERVER, 'latest', deltaHarbor)));
  const deltaPgbr = await pgDir(state.root, 'delta-pgbr');
  add(await measure('pgbr_chain_restore_full', pgbr(`--pg1-path=${deltaPgbr}`, '--process-max=2', 'restore')));

  await cluster.pgbench(['-t', '2000', '-c', '2', 'postgres']);
  await cluster.query('CHECKPOINT');
  const after = await sourceData();

  const harborChainBefore = duBytes(chain.repo);
  const incr = await measure('pgharbor_incr_lz4', harbor(chain, 'backup', SERVER, '--type', 'incr'), { okCodes: [0, 1, 2] });
  const incrLanded = incr.rc === 0;
  if (incrLanded) {
    incr.bytes = duBytes(chain.repo) - harborChainBefore;
    add(incr);
  } else {
    const why = readFileSync(incr.log, 'utf8').split('\n').find((l) => /ERROR|error/.test(l)) ?? `exit ${incr.rc}`;
    missing.set('pgharbor_incr_lz4', `n/a (feature not landed: ${why.trim().slice(0, 120)})`);
  }
  const pgbrChainBefore = duBytes(pgbrChainRepo);
  const pgbrIncr = await measure('pgbr_incr_lz4_block', pgbr('--type=incr', 'backup'));
  pgbrIncr.bytes = duBytes(pgbrChainRepo) - pgbrChainBefore;
  add(pgbrIncr);

  // Restores of the chain's newest backup: full + incr, and delta onto the full restored before the change.
  if (incrLanded) {
    const dest = await pgDir(state.root, 'dest');
    add(await measure('pgharbor_restore_full_plus_incr', harbor(chain, 'restore', SERVER, 'latest', dest)));
    await verifyRestore('pgharbor_restore_full_plus_incr', dest, after);
    await rm(dest, { recursive: true, force: true });
  } else {
    missing.set('pgharbor_restore_full_plus_incr', 'n/a (feature not landed: no incremental backup to restore)');
  }
  const dest = await pgDir(state.root, 'dest');
  add(await measure('pgbr_restore_full_plus_incr', pgbr(`--pg1-path=${dest}`, '--process-max=2', 'restore')));
  await rm(dest, { recursive: true, force: true });
  // Without incremental backups, the delta restore reads a second full taken after the change.
  if (!incrLanded) add(await measure('pgharbor_chain_full_after_change', harbor(chain, 'backup', SERVER)));
  const delta = await measure('pgharbor_restore_delta', harbor(chain, 'restore', SERVER, 'latest', deltaHarbor, '--delta'));
  add(delta);
  info.set('pgharbor_restore_delta', incrLanded ? 'onto the full restored before the change, from the incr' : 'onto the full restored before the change, from a second full (no incr yet)');
  await verifyRestore('pgharbor_restore_delta', deltaHarbor, after);
  add(await measure('pgbr_restore_delta', pgbr(`--pg1-path=${deltaPgbr}`, '--process-max=2', '--delta', 'restore')));
  missing.set('pg17_bytes_received', 'not available yet: needs a PostgreSQL 17 server with summarize_wal (the majors helper\'s servers) and BASE_BACKUP ... INCREMENTAL spoken natively (the native and incremental helpers); this build takes its backups through pg_basebackup 15');

  // ---------------------------------------------------------------- report
  const med = (label, key = 'wall') => {
    const xs = (rows.get(label) ?? []).map((r) => r[key]).sort((a, b) => a - b);
    if (!xs.length) return NaN;
    const m = xs.length >> 1;
    return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
  };
  const peak = (label) => Math.max(...(rows.get(label) ?? []).map((r) => r.rssMb));
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const cell = (label, key = 'wall', d = 2) => (rows.has(label) ? f(med(label, key), d) : missing.get(label) ?? 'n/a');

  for (const list of rows.values()) for (const r of list) if (r.bytes !== undefined) r.bytesMb = r.bytes / 1e6;
  const table = ['| row | pgharbor | anchor | ratio | target | verdict |', '|---|---|---|---|---|---|'];
  const target = (name, ours, anchor, limit, { unit = 's', key = 'wall', note } = {}) => {
    const a = med(anchor, key);
    const o = med(ours, key);
    const ratio = o / a;
    const shown = (label) => (rows.has(label) ? `${f(med(label, key), unit === 'MB' ? 1 : 2)} ${unit} (${label})` : missing.get(label) ?? 'n/a');
    const verdict = !rows.has(ours) ? 'n/a' : limit === undefined ? '-' : ratio <= limit ? 'PASS' : 'FAIL';
    table.push(`| ${name}${note ? ` (${note})` : ''} | ${shown(ours)} | ${shown(anchor)} | ${rows.has(ours) ? `${f(ratio)}x` : '-'} | ${limit === undefined ? '(info)' : `<= ${limit}x`} | ${verdict} |`);
  };
  target('full lz4 backup vs pgBackRest full lz4 pm2', 'pgharbor_full_lz4', 'pgbr_full_lz4_pm2', 0.5);
  target('full lz4 backup vs pg_basebackup -Ft client-lz4', 'pgharbor_full_lz4', 'pgbb_tar_lz4', 1.5);
  target('full uncompressed backup vs pg_basebackup -Ft', 'pgharbor_full_none', 'pgbb_tar', 1.0);
  target('incremental after pgbench -t 2000 -c 2: bytes added', 'pgharbor_incr_lz4', 'pgbr_incr_lz4_block', 1.0, { unit: 'MB', key: 'bytesMb' });
  target('incremental after pgbench -t 2000 -c 2: time', 'pgharbor_incr_lz4', 'pgbr_incr_lz4_block', 0.7);
  table.push(`| PG 17 with WAL summaries: bytes received vs a full | ${missing.get('pg17_bytes_received')} | - | - | <= 0.1x | n/a |`);
  target('restore full lz4 vs pgBackRest restore pm2', 'pgharbor_restore_full_lz4', 'pgbr_restore_lz4_pm2', 1.0, { note: 'target: faster' });
  target('restore full + 1 incr vs full restore', 'pgharbor_restore_full_plus_incr', 'pgharbor_restore_full_lz4', 1.2);
  target('delta restore after the change vs full restore', 'pgharbor_restore_delta', 'pgharbor_restore_full_lz4', 0.3, { note: info.get('pgharbor_restore_delta') });
  target('(anchor) pgBackRest delta restore vs its full restore', 'pgbr_restore_delta', 'pgbr_restore_lz4_pm2');
  target('(anchor) pgBackRest restore full + incr vs its full restore', 'pgbr_restore_full_plus_incr', 'pgbr_restore_lz4_pm2');
  for (const d of P.digests) {
    target(`full lz4 backup, digest ${d}, vs pgBackRest`, `pgharbor_full_lz4_digest_${d}`, 'pgbr_full_lz4_pm2');
    target(`restore full lz4, digest ${d}, vs pgBackRest`, `pgharbor_restore_full_lz4_digest_${d}`, 'pgbr_restore_lz4_pm2');
  }

  const all = ['| command | n | median wall s | CPU s (median) | peak RSS MB (max) | < 150 MB | bytes stored MB |', '|---|---|---|---|---|---|---|'];
  for (const [label, list] of rows) {
    const rss = peak(label);
    const bytes = list.find((r) => r.bytes !== undefined)?.bytes;
    all.push(`| ${label} | ${list.length} | ${f(med(label))} | ${f(med(label, 'cpu'))} | ${f(rss, 0)} | ${label.startsWith('pgharbor') ? (rss < 150 ? 'PASS' : 'FAIL') : '-'} | ${bytes !== undefined ? f(bytes / 1e6, 1) : '-'} |`);
  }
  for (const [label, why] of missing) if (label !== 'pg17_bytes_received') all.push(`| ${label} | 0 | ${why} | | | | |`);

  const md = [
    `# pgharbor engine bench ${stamp}`,
    '',
    `- ${pgVersion}; ${sh(PGBR, ['version'])}; node ${process.version}; pgharbor ${sh(process.execPath, [CLI, '--version'])} (git ${(() => { try { return sh('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty']); } catch { return '?'; } })()})`,
    `- host nproc=${os.cpus().length}, 1-min load during the rows ${f(Math.min(...[...rows.values()].flat().map((r) => r.load)), 1)}-${f(Math.max(...[...rows.values()].flat().map((r) => r.load)), 1)} (other work on the machine shows here)`,
    `- pgbench scale ${P.scale}: data dir ${f(dataBytes / MiB, 0)} MiB; reps ${P.reps} (full rows; chain rows once); durable cluster, warm page cache, sync before each row`,
    '- pgharbor: posix repository, immediate checkpoint; pgBackRest: posix repo, lz4, process-max=2, start-fast (block incremental: beta, repo1-bundle, repo1-block); pg_basebackup -Ft -X fetch --checkpoint=fast into a directory',
    '',
    '## Targets',
    '',
    ...table,
    '',
    '## Every row',
    '',
    ...all,
    '',
  ].join('\n');
  await writeFile(path.join(RESULTS, 'summary.md'), md);
  await writeFile(path.join(RESULTS, 'rows.json'), JSON.stringify(Object.fromEntries(rows), null, 1));
  console.log(md);
  log(`results in ${RESULTS}`);
} catch (error) {
  if (!state.stopping) {
    console.error(`bench:engine: ${error instanceof Error ? error.message : error}`);
    exitCode = 1;
  }
} finally {
  if (!state.stopping) await cleanup();
}
process.exitCode = exitCode;
