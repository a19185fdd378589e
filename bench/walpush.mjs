#!/usr/bin/env node
// WAL archive-push benchmark: per-segment latency of `pgharbor archive-push`
// (synchronous, as archive_command) side by side with `pgbackrest
// archive-push` (none, lz4) and `cp` + fsync, on the same real 16 MiB
// segments in one run; then the sustained rate of pgharbor's asynchronous
// mode under a write-heavy pgbench load. See bench/README.md.
//
// Every command starts without NODE_EXTRA_CA_CERTS (a production server does
// not have it; here it costs ~30 ms per Node start) and runs as the postgres
// OS user, as archive_command does.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync, rmSync, existsSync, chownSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCluster, chownToPgUser, pgOsUser } from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/bin.js');
const SEGMENTS = Number(process.env.WAL_SEGMENTS ?? 20);
const PASSES = Number(process.env.WALPUSH_PASSES ?? 2);
const ASYNC_SECONDS = Number(process.env.ASYNC_SECONDS ?? 30);
const PGBACKREST = ['/usr/bin/pgbackrest'].find((p) => existsSync(p));
const user = pgOsUser();
const env = { ...process.env, HOME: os.tmpdir() };
delete env.NODE_EXTRA_CA_CERTS;

const asPg = (cmd, args, options = {}) => spawnSync(cmd, args, { env, uid: process.getuid() === 0 ? user.uid : undefined, gid: process.getuid() === 0 ? user.gid : undefined, encoding: 'utf8', ...options });
const ms = (start) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const pct = (v, p) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * p))];
const log = (m) => process.stderr.write(`[walpush] ${m}\n`);

const root = await mkdtemp(path.join(process.env.TARGET_ROOT ?? '/var/tmp', 'pgharbor-walbench-'));
await chownToPgUser(root);
const cluster = await createCluster({ rootDir: root, durable: true, settings: { archive_mode: 'on', archive_command: `cp %p ${root}/src/%f`, max_wal_size: '4GB' } });
mkdirSync(path.join(root, 'src'));
await chownToPgUser(path.join(root, 'src'));
let results = [];
try {
  // 1. Real segments: CHECKPOINT + pgbench loops, collected by archive_command = cp.
  log(`generating ${SEGMENTS + 2} real WAL segments with pgbench`);
  await cluster.pgbench(['-i', '-s', '10', '-q', 'postgres']);
  for (let i = 0; i < 40 && readdirSync(path.join(root, 'src')).filter((f) => /^[0-9A-F]{24}$/.test(f)).length < SEGMENTS + 2; i++) {
    await cluster.query('CHECKPOINT');
    await cluster.pgbench(['-n', '-T', '3', '-c', '2', 'postgres']);
    await cluster.query('SELECT pg_switch_wal()');
    await new Promise((r) => setTimeout(r, 500));
  }
  const segments = readdirSync(path.join(root, 'src')).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort().slice(0, SEGMENTS).map((f) => path.join(root, 'src', f));
  log(`${segments.length} segments collected`);

  // 2. The contenders, each with its own fresh repository per pass.
  const methods = [];
  // Same compression on both sides: none against none, lz4 against lz4.
  for (const ct of ['none', 'lz4']) {
    const pgharborConfig = path.join(root, `pgharbor-${ct}.yaml`);
    writeFileSync(pgharborConfig, `servers:\n  bench:\n    conninfo: "${cluster.conninfo}"\n    repositories: [{ type: posix, path: ${root}/repo-pgharbor-${ct}, compression: ${ct} }]\n`);
    methods.push({ label: `pgharbor_${ct}`, run: (seg) => asPg(process.execPath, [CLI, '--config', pgharborConfig, 'archive-push', 'bench', seg]), reset: () => rmSync(`${root}/repo-pgharbor-${ct}`, { recursive: true, force: true }) });
  }
  if (PGBACKREST) {
    for (const ct of ['none', 'lz4']) {
      const conf = path.join(root, `pgbackrest-${ct}.conf`);
      writeFileSync(conf, `[global]\nrepo1-path=${root}/repo-pgbr-${ct}\ncompress-type=${ct}\narchive-async=n\nlog-path=${root}/pgbr-log\nlock-path=${root}/pgbr-lock\nspool-path=${root}/pgbr-spool\nlog-level-console=warn\nlog-level-file=off\n\n[bench]\npg1-path=${cluster.dataDir}\npg1-port=${cluster.port}\npg1-socket-path=${cluster.socketDir}\npg1-user=postgres\n`);
      chownSync(conf, user.uid, user.gid);
      methods.push({
        label: `pgbackrest_${ct}`,
        run: (seg) => asPg(PGBACKREST, [`--config=${conf}`, '--stanza=bench', 'archive-push', seg]),
        reset: () => {
          rmSync(`${root}/repo-pgbr-${ct}`, { recursive: true, force: true });
          const r = asPg(PGBACKREST, [`--config=${conf}`, '--stanza=bench', 'stanza-create']);
          if (r.status !== 0) throw new Error(`pgbackrest stanza-create: ${r.stderr}`);
        },
      });
    }
  } else log('pgbackrest not installed (apt-get install pgbackrest): skipping it');
  const cpDir = path.join(root, 'repo-cp');
  methods.push({ label: 'cp_fsync', run: (seg) => asPg('sh', ['-c', 'cp "$1" "$2/" && sync "$2/$(basename "$1")" "$2"', 'sh', seg, cpDir]), reset: () => { rmSync(cpDir, { recursive: true, force: true }); mkdirSync(cpDir); chownSync(cpDir, user.uid, user.gid); } });
  methods.push({ label: 'node_start', run: () => asPg(process.execPath, ['-e', '0']), reset: () => {} });

  const times = Object.fromEntries(methods.map((m) => [m.label, []]));
  for (let pass = 1; pass <= PASSES; pass++) {
    for (const m of methods) m.reset();
    execFileSync('sync');
    segments.forEach((seg, i) => {
      for (let k = 0; k < methods.length; k++) {
        const m = methods[(k + i) % methods.length]; // rotate: fsync phases hit every method alike
        const start = process.hrtime.bigint();
        const r = m.run(seg);
        const t = ms(start);
        if (r.status !== 0) throw new Error(`${m.label} failed on ${path.basename(seg)}: ${r.stderr}`);
        times[m.label].push(t);
      }
    });
  }
  const base = median(times.cp_fsync);
  const pgbr = times.pgbackrest_none ? median(times.pgbackrest_none) : undefined;
  const pgbrLz4 = times.pgbackrest_lz4 ? median(times.pgbackrest_lz4) : undefined;
  results.push('## archive-push, one 16 MiB segment per call (synchronous)', '', `${segments.length} real segments x ${PASSES} passes; NODE_EXTRA_CA_CERTS unset; run as the postgres user`, '',
    '| method | n | median ms | p90 ms | x cp+fsync | x pgbackrest, same compression |', '|---|---|---|---|---|---|');
  for (const m of methods) {
    const v = times[m.label];
    const same = m.label.endsWith('_lz4') ? pgbrLz4 : m.label.endsWith('_none') ? pgbr : undefined;
    results.push(`| ${m.label} | ${v.length} | ${median(v).toFixed(1)} | ${pct(v, 0.9).toFixed(1)} | ${(median(v) / base).toFixed(2)} | ${same ? (median(v) / same).toFixed(2) : '-'} |`);
  }
  console.log(results.join('\n'));

  // 3. Asynchronous mode under a write-heavy load: archived segments per minute and the .ready backlog.
  log(`async mode: ${ASYNC_SECONDS} s of bulk inserts with archive_async`);
  const asyncConfig = path.join(root, 'pgharbor-async.yaml');
  writeFileSync(asyncConfig, `state_dir: ${root}/state\nservers:\n  bench:\n    conninfo: "${cluster.conninfo}"\n    archive_async: true\n    archive_process_max: 2\n    repositories: [{ type: posix, path: ${root}/repo-async, compression: lz4 }]\n`);
  mkdirSync(`${root}/state`, { recursive: true });
  await chownToPgUser(`${root}/state`);
  await cluster.query(`ALTER SYSTEM SET archive_command = 'env -u NODE_EXTRA_CA_CERTS ${process.execPath} ${CLI} --config ${asyncConfig} archive-push bench %p'`);
  await cluster.query('SELECT pg_reload_conf()');
  await cluster.query('SELECT pg_stat_reset_shared(\'archiver\')');
  const statusDir = path.join(cluster.dataDir, 'pg_wal', 'archive_status');
  const backlog = [];
  // A WAL-heavy writer: two sessions of bulk inserts (about 100 MB of WAL per statement), as fast as the server goes.
  await cluster.query('CREATE TABLE walgen (id int, pad text)');
  const started = Date.now();
  const writer = async () => {
    while (Date.now() - started < ASYNC_SECONDS * 1000) {
      await cluster.query(`INSERT INTO walgen SELECT g, repeat('x', 400) FROM generate_series(1, 200000) g`);
      await cluster.query('TRUNCATE walgen');
    }
  };
  const sampler = setInterval(() => backlog.push(readdirSync(statusDir).filter((f) => f.endsWith('.ready')).length), 1000);
  await Promise.all([writer(), writer()]);
  // Let the archiver finish what is ready, then count.
  await cluster.query('SELECT pg_switch_wal()');
  for (let i = 0; i < 600 && readdirSync(statusDir).some((f) => f.endsWith('.ready')); i++) await new Promise((r) => setTimeout(r, 100));
  clearInterval(sampler);
  const elapsed = (Date.now() - started) / 1000;
  const [stats] = await cluster.query('SELECT archived_count::int AS archived, failed_count::int AS failed FROM pg_stat_archiver');
  const rate = (stats.archived / elapsed) * 60;
  const asyncLines = ['', '## archive-push asynchronous mode (archive_async, 2 parallel pushes) under a bulk-insert load', '',
    `- ${stats.archived} segments archived in ${elapsed.toFixed(0)} s: **${rate.toFixed(0)} segments/minute** (${(rate * 16 / 60).toFixed(0)} MiB/s), ${stats.failed} failures`,
    `- .ready backlog sampled every second: first ${backlog.slice(0, 3).join(', ')} … last ${backlog.slice(-3).join(', ')}, max ${Math.max(0, ...backlog)}`,
    `- the rate is bounded by how much WAL the writers produce here (2 cores shared by PostgreSQL, the writers and the archiver); a backlog that stays flat means archiving keeps up`];
  console.log(asyncLines.join('\n'));
  results = results.concat(asyncLines);
  const out = path.join(REPO_ROOT, '.bench-results', `walpush-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, results.join('\n') + '\n');
  log(`written ${out}`);
} finally {
  await cluster.destroy().catch(() => {});
  rmSync(root, { recursive: true, force: true });
}
