// Storage throughput, posix vs S3 vs SFTP. The S3 server (s3rver) runs in
// its own process, as a real store would; sshd is the private sandbox one.
//
//   node bench/storage.mjs            # drivers: stream 256 MiB in (put) and out (get), 3 times
//   SIZE_MB=512 REPS=5 node bench/storage.mjs
//   node bench/storage.mjs --backup   # the CLI: backup and restore a pgbench database (SCALE=10)
//                                     # into and from each repository, REPS times
import { execFileSync, fork } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { chownToPgUser, createCluster, startSshd } from '@pgharbor/sandbox';
import { createPosixStorage } from '@pgharbor/storage-posix';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.SIZE_MB ?? 256) * MiB;
const REPS = Number(process.env.REPS ?? 3);
const here = path.dirname(fileURLToPath(import.meta.url));
const silent = { debug() {}, info() {}, warn() {}, error() {} };

if (process.argv[2] === '--s3-server') {
  // Child mode: serve S3 until the parent goes away.
  const { startS3Server } = await import('@pgharbor/sandbox');
  const s3 = await startS3Server({ buckets: ['bench'], conditionalWrites: true, rootDir: process.argv[3] });
  process.send({ endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });
  process.on('disconnect', () => s3.destroy().then(() => process.exit(0)));
} else if (process.argv[2] === '--backup') {
  await withServers(backupBench);
} else {
  await withServers(driverBench);
}

async function withServers(bench) {
  const root = await mkdtemp(path.join(process.env.PGHARBOR_SANDBOX_DIR ?? os.tmpdir(), 'pgharbor-bench-storage-'));
  await chownToPgUser(root);
  const child = fork(fileURLToPath(import.meta.url), ['--s3-server', root], { execArgv: ['--openssl-legacy-provider'] });
  const s3 = await new Promise((resolve) => child.once('message', resolve));
  const sshd = await startSshd({ rootDir: root });
  process.env.BENCH_S3_KEY = s3.accessKeyId;
  process.env.BENCH_S3_SECRET = s3.secretAccessKey;
  try {
    await bench(root, s3, sshd);
  } finally {
    child.disconnect();
    await sshd.destroy();
    await rm(root, { recursive: true, force: true });
  }
}

async function driverBench(root, s3, sshd) {  const { createS3Storage } = await import(path.join(here, '../packages/storage-s3/dist/s3-storage.js'));
  const { createSftpStorage } = await import(path.join(here, '../packages/storage-sftp/dist/sftp-storage.js'));
  const drivers = {
    posix: () => createPosixStorage({ path: path.join(root, 'posix') }),
    s3: () =>
      createS3Storage(
        { bucket: 'bench', endpoint: s3.endpoint, force_path_style: true, access_key_id: { from_env: 'BENCH_S3_KEY' }, secret_access_key: { from_env: 'BENCH_S3_SECRET' } },
        { logger: silent, configDir: root },
      ),
    sftp: () =>
      createSftpStorage(
        { host: sshd.host, port: sshd.port, user: sshd.user, path: path.join(root, 'sftp'), private_key_file: sshd.clientKeyFile, known_hosts_file: sshd.knownHostsFile },
        { logger: silent, configDir: root },
      ),
  };
  console.log(`object ${SIZE / MiB} MiB, ${REPS} repetitions, ${os.cpus().length} cores; MiB/s (median)`);
  {
    for (const [name, create] of Object.entries(drivers)) {
      const driver = create();
      const puts = [];
      const gets = [];
      for (let rep = 0; rep < REPS; rep++) {
        let start = performance.now();
        await driver.put(`bench/object-${rep}`, generated(SIZE));
        puts.push(SIZE / MiB / ((performance.now() - start) / 1000));
        start = performance.now();
        let got = 0;
        for await (const chunk of await driver.get(`bench/object-${rep}`)) got += chunk.length;
        if (got !== SIZE) throw new Error(`${name}: read ${got} bytes, expected ${SIZE}`);
        gets.push(SIZE / MiB / ((performance.now() - start) / 1000));
        await driver.delete(`bench/object-${rep}`);
      }
      await driver.close();
      console.log(`${name.padEnd(6)} put ${median(puts).toFixed(0).padStart(5)}   get ${median(gets).toFixed(0).padStart(5)}   (put ${puts.map((v) => v.toFixed(0)).join('/')}, get ${gets.map((v) => v.toFixed(0)).join('/')})`);
    }
  }
}

/** The whole path: `pgharbor backup --repo N` and `pgharbor restore --repo N`, database MiB per second. */
async function backupBench(root, s3, sshd) {
  const scale = Number(process.env.SCALE ?? 10);
  const cluster = await createCluster({ rootDir: root });
  try {
    await cluster.pgbench(['-i', '-s', String(scale), '-q', 'postgres']);
    await cluster.query('CHECKPOINT');
    const [{ bytes }] = await cluster.query("SELECT sum(pg_database_size(datname))::bigint AS bytes FROM pg_database");
    const configFile = path.join(root, 'pgharbor.config.yaml');
    await writeFile(configFile, [
      'servers:',
      '  bench:',
      `    conninfo: "${cluster.conninfo}"`,
      '    immediate_checkpoint: true',
      '    repositories:',
      '      - { type: posix, name: posix, path: ./posix }',
      `      - { type: s3, name: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: bench, access_key_id: { from_env: BENCH_S3_KEY }, secret_access_key: { from_env: BENCH_S3_SECRET } }`,
      `      - { type: sftp, name: sftp, host: ${sshd.host}, port: ${sshd.port}, user: ${sshd.user}, path: "${path.join(root, 'sftp')}", private_key_file: "${sshd.clientKeyFile}", known_hosts_file: "${sshd.knownHostsFile}" }`,
      '',
    ].join('\n'));
    const cli = path.join(here, '../packages/cli/dist/bin.cjs');
    const pgharbor = (...args) => execFileSync(process.execPath, [cli, '--config', configFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const mib = Number(bytes) / MiB;
    console.log(`pgbench scale ${scale}: ${mib.toFixed(0)} MiB of databases, ${REPS} repetitions, ${os.cpus().length} cores; repository compression: pgharbor's default; MiB/s (median)`);
    const results = {};
    for (let rep = 0; rep < REPS; rep++) {
      for (const [index, name] of ['posix', 's3', 'sftp'].entries()) {
        const r = (results[name] ??= { backup: [], restore: [] });
        let start = performance.now();
        pgharbor('backup', 'bench', '--repo', String(index + 1));
        r.backup.push(mib / ((performance.now() - start) / 1000));
        const target = path.join(root, `restore-${name}-${rep}`);
        await mkdir(target, { mode: 0o700 });
        await chownToPgUser(target);
        start = performance.now();
        pgharbor('restore', 'bench', 'latest', target, '--repo', String(index + 1));
        r.restore.push(mib / ((performance.now() - start) / 1000));
        await rm(target, { recursive: true, force: true });
      }
    }
    for (const [name, r] of Object.entries(results)) {
      console.log(`${name.padEnd(6)} backup ${median(r.backup).toFixed(0).padStart(5)}   restore ${median(r.restore).toFixed(0).padStart(5)}   (backup ${r.backup.map((v) => v.toFixed(0)).join('/')}, restore ${r.restore.map((v) => v.toFixed(0)).join('/')})`);
    }
  } finally {
    await cluster.destroy();
  }
}

/** `size` bytes in 1 MiB chunks, produced on demand. */
function generated(size) {
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return this.push(null);
      const n = Math.min(MiB, left);
      left -= n;
      this.push(Buffer.from(chunk.subarray(0, n)));
    },
  });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
