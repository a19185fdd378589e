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
import { execFileSync, fork, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync, rmSync, existsSync, chownSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCluster, chownToPgUser, pgOsUser } from '@pgharbor/sandbox';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// PGHARBOR_CLI: time another build (a copy of an older commit) against the same anchors.
const CLI = process.env.PGHARBOR_CLI ?? path.join(REPO_ROOT, 'packages/cli/dist/bin.cjs');
const SEGMENTS = Number(process.env.WAL_SEGMENTS ?? 20);
const PASSES = Number(process.env.WALPUSH_PASSES ?? 2);
const ASYNC_SECONDS = Number(process.env.ASYNC_SECONDS ?? 30);
const ASYNC_BACKLOG = Number(process.env.ASYNC_BACKLOG ?? 300);
const PGBACKREST = ['/usr/bin/pgbackrest'].find((p) => existsSync(p));
const user = pgOsUser();
const env = { ...process.env, HOME: os.tmpdir() };
delete env.NODE_EXTRA_CA_CERTS;

const asPg = (cmd, args, options = {}) => spawnSync(cmd, args, { env, uid: process.getuid() === 0 ? user.uid : undefined, gid: process.getuid() === 0 ? user.gid : undefined, encoding: 'utf8', ...options });
const ms = (start) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const pct = (v, p) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * p))];
const log = (m) => process.stderr.write(`[walpush] ${m}\n`);
// How busy the (shared) machine was: every figure here moves with it.
const machineLoad = () => {
  const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const psi = (() => { try { return /some avg10=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1]; } catch { return undefined; } })();
  return `load1 ${load1}${psi !== undefined ? `, CPU pressure ${psi}%` : ''}`;
};

if (process.argv[2] === '--s3-server') {
  // Child mode: an S3 server (TLS, as pgBackRest requires) in a process of its own, since the
  // timing loop below blocks this one in spawnSync.
  const { startS3Server } = await import('@pgharbor/sandbox');
  const s3 = await startS3Server({ buckets: ['walbench'], conditionalWrites: true, tls: true, rootDir: process.argv[3] });
  process.send({ endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, caFile: s3.caFile });
  process.on('disconnect', () => s3.destroy().then(() => process.exit(0)));
  await new Promise(() => {});
}
const S3_SECTION = process.env.WALPUSH_S3 !== '0';

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
  // pgharbor_*: as configured by default, calls served by the resident WAL server after the first;
  // pgharbor_*_alone: archive_server: false, every call starts and loads pgharbor itself.
  for (const ct of ['none', 'lz4']) {
    for (const alone of [false, true]) {
      const label = `pgharbor_${ct}${alone ? '_alone' : ''}`;
      const pgharborConfig = path.join(root, `${label}.yaml`);
      writeFileSync(pgharborConfig, `servers:\n  bench:\n    conninfo: "${cluster.conninfo}"\n${alone ? '    archive_server: false\n' : ''}    repositories: [{ type: posix, path: ${root}/repo-${label}, compression: ${ct} }]\n`);
      methods.push({ label, run: (seg) => asPg(process.execPath, [CLI, '--config', pgharborConfig, 'archive-push', 'bench', seg]), reset: () => rmSync(`${root}/repo-${label}`, { recursive: true, force: true }) });
    }
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
  const loadBefore = machineLoad();
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
  results.push('## archive-push, one 16 MiB segment per call (synchronous)', '', `${segments.length} real segments x ${PASSES} passes; NODE_EXTRA_CA_CERTS unset; run as the postgres user; ${loadBefore} before, ${machineLoad()} after`, '',
    '| method | n | median ms | p90 ms | x cp+fsync | x pgbackrest, same compression |', '|---|---|---|---|---|---|');
  for (const m of methods) {
    const v = times[m.label];
    const same = /_lz4(_alone)?$/.test(m.label) ? pgbrLz4 : /_none(_alone)?$/.test(m.label) ? pgbr : undefined;
    results.push(`| ${m.label} | ${v.length} | ${median(v).toFixed(1)} | ${pct(v, 0.9).toFixed(1)} | ${(median(v) / base).toFixed(2)} | ${same ? (median(v) / same).toFixed(2) : '-'} |`);
  }
  console.log(results.join('\n'));

  // WALPUSH_S3=0 skips this section.
  if (S3_SECTION) {
    const lines = await s3Section(segments);
    console.log(lines.join('\n'));
    results = results.concat(lines);
  }

  // ASYNC_SECONDS=0 skips this section (e.g. while iterating on the synchronous figures).
  if (ASYNC_SECONDS > 0) {
    // 3. Asynchronous mode. PostgreSQL runs archive_command one segment at a time, so the rate is
    // bounded by how fast one archive-push confirms a segment the archiver already stored, and by how
    // fast the archiver stores them. Two measurements:
    //  a. drain: ASYNC_BACKLOG real segments pile up while archive_command is empty, then archiving
    //     starts and the time until no .ready file is left gives the sustained rate;
    //  b. load: ASYNC_SECONDS of bulk inserts with archiving on; the .ready backlog sampled every
    //     second shows whether archiving keeps up (on 2 cores the writers produce less WAL than the
    //     target rate, so this one is bounded by WAL generation, and says so).
    const asyncConfig = path.join(root, 'pgharbor-async.yaml');
    writeFileSync(asyncConfig, `state_dir: ${root}/state\nservers:\n` + ['drain', 'load'].map((s) => `  ${s}:\n    conninfo: "${cluster.conninfo}"\n    archive_async: true\n    archive_process_max: 2\n    repositories: [{ type: posix, path: ${root}/repo-async-${s}, compression: lz4 }]\n`).join(''));
    mkdirSync(`${root}/state`, { recursive: true });
    await chownToPgUser(`${root}/state`);
    const statusDir = path.join(cluster.dataDir, 'pg_wal', 'archive_status');
    const readyCount = () => readdirSync(statusDir).filter((f) => f.endsWith('.ready')).length;
    const sleep = (msec) => new Promise((r) => setTimeout(r, msec));
    const setArchiveCommand = async (command) => {
      await cluster.query(`ALTER SYSTEM SET archive_command = '${command}'`);
      await cluster.query('SELECT pg_reload_conf()');
    };
    const pushCommand = (server) => `env -u NODE_EXTRA_CA_CERTS ${process.execPath} ${CLI} --config ${asyncConfig} archive-push ${server} %p`;
    // A WAL-heavy writer: bulk inserts, about 100 MB of WAL per statement.
    await cluster.query('CREATE TABLE walgen (id int, pad text)');
    const insert = async () => {
      await cluster.query(`INSERT INTO walgen SELECT g, repeat('x', 400) FROM generate_series(1, 200000) g`);
      await cluster.query('TRUNCATE walgen');
    };
    const archiver = async () => (await cluster.query('SELECT archived_count::int AS archived, failed_count::int AS failed FROM pg_stat_archiver'))[0];

    // 3a. Drain a pre-generated backlog.
    log(`async mode, drain: generating a backlog of ${ASYNC_BACKLOG} segments with archiving paused`);
    await setArchiveCommand('');
    await sleep(1000); // let the archiver finish what it had
    for (let i = 0; i < 400 && readyCount() < ASYNC_BACKLOG; i++) await insert();
    await cluster.query('SELECT pg_switch_wal()');
    await sleep(500);
    const backlogStart = readyCount();
    const before = await archiver();
    log(`async mode, drain: ${backlogStart} segments ready; archiving them`);
    const drainLoad = machineLoad();
    const drainStart = Date.now();
    await setArchiveCommand(pushCommand('drain'));
    const drainSamples = [];
    while (readyCount() > 0 && Date.now() - drainStart < 600_000) {
      await sleep(250);
      drainSamples.push(readyCount());
    }
    const drainSeconds = (Date.now() - drainStart) / 1000;
    const drained = await archiver();
    const drainRate = ((drained.archived - before.archived) / drainSeconds) * 60;

    // 3b. Under load.
    log(`async mode, load: ${ASYNC_SECONDS} s of bulk inserts with archive_async`);
    await setArchiveCommand(pushCommand('load'));
    await sleep(1000);
    const loadStats = await archiver();
    const loadLoad = machineLoad();
    const backlog = [];
    const started = Date.now();
    const writer = async () => {
      while (Date.now() - started < ASYNC_SECONDS * 1000) await insert();
    };
    const sampler = setInterval(() => backlog.push(readyCount()), 1000);
    await Promise.all([writer(), writer()]);
    const writeSeconds = (Date.now() - started) / 1000;
    const atWriteEnd = await archiver();
    const leftAtWriteEnd = readyCount();
    // Let the archiver finish what is ready, then count.
    await cluster.query('SELECT pg_switch_wal()');
    for (let i = 0; i < 600 && readyCount() > 0; i++) await sleep(100);
    clearInterval(sampler);
    const elapsed = (Date.now() - started) / 1000;
    const loaded = await archiver();
    const archivedUnderLoad = atWriteEnd.archived - loadStats.archived;
    const generated = archivedUnderLoad + leftAtWriteEnd;
    const third = Math.max(1, Math.floor(backlog.length / 3));
    const avg = (v) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);
    const asyncLines = ['', '## archive-push asynchronous mode (archive_async, archive_process_max 2, lz4)', '',
      `- drain of a pre-generated backlog: ${drained.archived - before.archived} segments (${backlogStart} ready at the start) archived in ${drainSeconds.toFixed(1)} s: **${drainRate.toFixed(0)} segments/minute** (${((drainRate * 16) / 60).toFixed(0)} MiB/s), ${drained.failed - before.failed} failures; .ready left: ${readyCount()}; ${drainLoad} at the start`,
      `- under load (2 bulk-insert writers, ${writeSeconds.toFixed(0)} s): the writers produced ${generated} segments (${((generated / writeSeconds) * 60).toFixed(0)} segments/minute); ${archivedUnderLoad} were archived while they wrote (${((archivedUnderLoad / writeSeconds) * 60).toFixed(0)} segments/minute), all ${loaded.archived - loadStats.archived} within ${elapsed.toFixed(0)} s, ${loaded.failed - loadStats.failed} failures; ${loadLoad} at the start, ${machineLoad()} at the end`,
      `- .ready backlog under load, sampled every second: first ${backlog.slice(0, 3).join(', ')} … last ${backlog.slice(-3).join(', ')}, max ${Math.max(0, ...backlog)}; mean of the first third ${avg(backlog.slice(0, third)).toFixed(1)}, of the last third ${avg(backlog.slice(-third)).toFixed(1)} (growth means archiving falls behind)`,
      `- the load rate is bounded by how much WAL the writers produce here (2 cores shared by PostgreSQL, the writers and the archiver); the drain rate is what archiving sustains`];
    console.log(asyncLines.join('\n'));
    results = results.concat(asyncLines);
  }
  const out = path.join(REPO_ROOT, '.bench-results', `walpush-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, results.join('\n') + '\n');
  log(`written ${out}`);
} finally {
  await cluster.destroy().catch(() => {});
  rmSync(root, { recursive: true, force: true });
}

/**
 * archive-push into an S3 repository (the sandbox's S3 server over TLS on
 * loopback), lz4, side by side with pgBackRest into the same server: as
 * configured by default (the WAL server, which loads the S3 driver once), alone
 * (archive_server: false: every call loads the full CLI and the AWS SDK), and
 * pgbackrest archive-push.
 */
async function s3Section(segments) {
  const s3Dir = path.join(root, 's3');
  mkdirSync(s3Dir);
  const child = fork(fileURLToPath(import.meta.url), ['--s3-server', s3Dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const s3 = await new Promise((resolve, reject) => child.once('message', resolve).once('error', reject).once('exit', (code) => reject(new Error(`S3 server exited with ${code}`))));
    const caFile = path.join(root, 's3-ca.pem');
    writeFileSync(caFile, readFileSync(s3.caFile));
    chownSync(caFile, user.uid, user.gid);
    const s3env = { ...env, PGH_BENCH_S3_KEY: s3.accessKeyId, PGH_BENCH_S3_SECRET: s3.secretAccessKey };
    const methods = [];
    for (const alone of [false, true]) {
      const label = `pgharbor_s3_lz4${alone ? '_alone' : ''}`;
      const config = path.join(root, `${label}.yaml`);
      writeFileSync(config, `servers:\n  bench:\n    conninfo: "${cluster.conninfo}"\n${alone ? '    archive_server: false\n' : ''}    repositories:\n      - { type: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: walbench, prefix: ${label}, ca_file: ${caFile}, access_key_id: { from_env: PGH_BENCH_S3_KEY }, secret_access_key: { from_env: PGH_BENCH_S3_SECRET }, compression: lz4 }\n`);
      methods.push({ label, run: (seg) => asPg(process.execPath, [CLI, '--config', config, 'archive-push', 'bench', seg], { env: s3env }) });
    }
    if (PGBACKREST) {
      const url = new URL(s3.endpoint);
      const conf = path.join(root, 'pgbackrest-s3.conf');
      writeFileSync(conf, `[global]\nrepo1-type=s3\nrepo1-s3-endpoint=localhost\nrepo1-storage-port=${url.port}\nrepo1-s3-bucket=walbench\nrepo1-s3-region=us-east-1\nrepo1-s3-key=${s3.accessKeyId}\nrepo1-s3-key-secret=${s3.secretAccessKey}\nrepo1-s3-uri-style=path\nrepo1-storage-ca-file=${caFile}\nrepo1-path=/pgbackrest\ncompress-type=lz4\narchive-async=n\nlog-path=${root}/pgbr-log\nlock-path=${root}/pgbr-lock\nspool-path=${root}/pgbr-spool\nlog-level-console=warn\nlog-level-file=off\n\n[bench]\npg1-path=${cluster.dataDir}\npg1-port=${cluster.port}\npg1-socket-path=${cluster.socketDir}\npg1-user=postgres\n`);
      chownSync(conf, user.uid, user.gid);
      const created = asPg(PGBACKREST, [`--config=${conf}`, '--stanza=bench', 'stanza-create']);
      if (created.status !== 0) throw new Error(`pgbackrest stanza-create (S3): ${created.stderr}${created.stdout}`);
      methods.push({ label: 'pgbackrest_s3_lz4', run: (seg) => asPg(PGBACKREST, [`--config=${conf}`, '--stanza=bench', 'archive-push', seg]) });
    }
    const times = Object.fromEntries(methods.map((m) => [m.label, []]));
    const loadBefore = machineLoad();
    segments.forEach((seg, i) => {
      for (let k = 0; k < methods.length; k++) {
        const m = methods[(k + i) % methods.length];
        const start = process.hrtime.bigint();
        const r = m.run(seg);
        const t = ms(start);
        if (r.status !== 0) throw new Error(`${m.label} failed on ${path.basename(seg)}: ${r.stderr}`);
        times[m.label].push(t);
      }
    });
    const pgbr = times.pgbackrest_s3_lz4 ? median(times.pgbackrest_s3_lz4) : undefined;
    const lines = ['', '## archive-push into S3 (sandbox S3 server, TLS, loopback; lz4)', '', `${segments.length} segments, one pass (the first pgharbor call starts the WAL server); ${loadBefore} before, ${machineLoad()} after`, '',
      '| method | n | median ms | p90 ms | x pgbackrest |', '|---|---|---|---|---|'];
    for (const m of methods) {
      const v = times[m.label];
      lines.push(`| ${m.label} | ${v.length} | ${median(v).toFixed(1)} | ${pct(v, 0.9).toFixed(1)} | ${pgbr ? (median(v) / pgbr).toFixed(2) : '-'} |`);
    }
    return lines;
  } finally {
    child.disconnect();
  }
}
