import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgBinForMajor, startSshd, SUPPORTED_MAJORS, type SandboxSshd } from '@pgharbor/sandbox';
import { createWorkspace, pgharbor, pgharborProcess, pgbenchChecksums, sshFilesForPgUser, switchAndWaitArchived, waitFor, waitPromoted, type Workspace } from './harness.js';

/** Debian 12's client programs: pg_receivewal 15 streams from servers up to 15 and refuses newer ones. */
const DEBIAN_CLIENT_MAJOR = 15;
const NEWEST_MAJOR = SUPPORTED_MAJORS[SUPPORTED_MAJORS.length - 1];

/**
 * The round trip on every supported major: Debian's 15 and the npm
 * packages' servers for the others (client programs from Debian's 15).
 * One workspace per major, pgbench scale 1: the suite's time is precious.
 */
describe.each(SUPPORTED_MAJORS.map((major) => [major]))('PostgreSQL %i', (major) => {
  let ws: Workspace | undefined;

  beforeAll(async () => {
    ws = await createWorkspace({ cluster: { pgBin: pgBinForMajor(major) }, asPgUser: true, archive: true, serverExtra: ['method: basebackup'] });
    await ws.cluster.pgbench(['-i', '-s', '1', '-q']);
  });
  afterAll(async () => ws?.cleanup());

  it('full and incremental backups, WAL archived, restored to a target LSN through archive-get: the data matches', async () => {
    ws = ws!;
    const [{ version }] = await ws.cluster.query<{ version: string }>("SELECT current_setting('server_version_num') AS version");
    expect(Math.floor(Number(version) / 10000)).toBe(major);

    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr, backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    const full = JSON.parse(backup.stdout);
    expect(Math.floor(full.pgVersion / 10000)).toBe(major);

    // An incremental backup on top: its changed relation files as blocks, the rest references to the full.
    await ws.cluster.pgbench(['-n', '-t', '100', '-c', '2']);
    const incremental = await ws.run(['--json', 'backup', 'pg', '--type', 'incr']);
    expect(incremental.exitCode, incremental.stderr).toBe(0);
    expect(JSON.parse(incremental.stdout)).toMatchObject({ type: 'incr', parent: full.id });

    // Changes after the backups reach the restore only through archive-push and archive-get.
    await ws.cluster.pgbench(['-n', '-t', '200', '-c', '2']);
    const expected = await pgbenchChecksums(ws.cluster);
    // The insert position: with synchronous_commit = off the last commit may not be written yet.
    const [{ lsn }] = await ws.cluster.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await ws.cluster.pgbench(['-n', '-t', '100', '-c', '1']); // past the target: must not be replayed
    await switchAndWaitArchived(ws.cluster);

    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--target-lsn', lsn, '--target-action', 'promote']);
    expect(restore.stderr, restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    expect(restored.major).toBe(major);
    expect(await pgbenchChecksums(restored)).toEqual(expected);
    const history = async (cluster: { query: Workspace['cluster']['query'] }) => (await cluster.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history'))[0].n;
    expect([await history(restored), await history(ws.cluster)]).toEqual(['600', '700']); // the target mattered
    await restored.stop();
  });

  it('check passes; switch-wal --archive works', async () => {
    ws = ws!;
    const check = await ws.run(['check', 'pg']);
    expect(check.stdout + check.stderr).not.toMatch(/FAILED/);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    const switched = await ws.run(['switch-wal', 'pg', '--force', '--archive']);
    expect(switched.exitCode, switched.stderr).toBe(0);
  });

  // verify reads the repository, the same for every major; pg_verifybackup is the major's own: Debian's 15
  // runs on 15's backup, and for the newest (manifest version 2) verify says what to install.
  if (major === DEBIAN_CLIENT_MAJOR || major === NEWEST_MAJOR) {
    it('verify --pg-verifybackup', async () => {
      const verify = await ws!.run(['verify', 'pg', 'latest', '--pg-verifybackup']);
      expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
      expect(verify.stdout).toContain('verify: every checksum matches');
      if (major === DEBIAN_CLIENT_MAJOR) expect(verify.stdout).toContain('pg_verifybackup: OK');
      else expect(verify.stdout).toContain(`pg_verifybackup: skipped: pg_verifybackup not found or not runnable; install PostgreSQL ${major}'s client programs (Debian/Ubuntu: apt install postgresql-${major},`);
    });
  }

  // Where Debian's pg_receivewal 15 streams from an older major (15 itself: receive-wal.test.ts), and where
  // it cannot, on the newest (16 and 17 take the same path). Last: it leaves a slot behind where it streams.
  if (major < DEBIAN_CLIENT_MAJOR || major === NEWEST_MAJOR) {
    it(major < DEBIAN_CLIENT_MAJOR ? 'receive-wal streams WAL with pg_receivewal 15' : 'check and receive-wal name the pg_receivewal to install', async () => {
      ws = ws!;
      // Server pg again, with the streaming archiver on and its own repository (archive_command fills ./repo).
      const config = path.join(ws.dir, 'streaming.yaml');
      const text = (await readFile(ws.configFile, 'utf8')).replace('    repositories:\n      - { type: posix, path: ./repo }', '    streaming_archiver: true\n    repositories:\n      - { type: posix, path: ./repo-stream }');
      await writeFile(config, `state_dir: ./state\n${text}`);
      const check = await pgharbor(['--config', config, 'check', 'pg'], { asPgUser: true });
      const line = check.stdout.split('\n').find((l) => l.includes('pg_receivewal:'));
      if (major <= DEBIAN_CLIENT_MAJOR) {
        expect(line, check.stdout).toMatch(/pg_receivewal: OK \(pg_receivewal \(PostgreSQL\) 15\./);
        const receiver = pgharborProcess(['--config', config, 'receive-wal', 'pg'], { asPgUser: true });
        try {
          await waitFor('the receiver to stream', async () => ((await ws!.cluster.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = 'pgharbor_receive_wal' AND state = 'streaming'`)).length > 0 ? true : undefined));
          // Written after streaming began: pg_receivewal 15 starts a PostgreSQL 13/14 server at its current
          // position (READ_REPLICATION_SLOT, which gives the slot's, came with 15).
          await ws.cluster.query('CREATE TABLE streamed AS SELECT 1 AS id');
          const [{ file }] = await ws.cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS file');
          await ws.cluster.query('SELECT pg_switch_wal()');
          await waitFor(`${file} stored by receive-wal`, async () => ((await readdir(path.join(ws!.dir, 'repo-stream', 'pg', 'wal', file.slice(0, 16))).catch(() => [])).some((f) => f.startsWith(`${file}-`)) ? true : undefined));
          const replication = await pgharbor(['--config', config, '--json', 'replication-status', 'pg'], { asPgUser: true });
          expect(replication.exitCode, replication.stderr).toBe(0);
          expect(JSON.parse(replication.stdout).clients.map((c: { applicationName: string }) => c.applicationName)).toContain('pgharbor_receive_wal');
        } catch (error) {
          receiver.kill('SIGTERM');
          const { stdout, stderr } = await receiver;
          throw new Error(`${(error as Error).message}; receive-wal said:\n${String(stdout)}${String(stderr)}`);
        }
        receiver.kill('SIGTERM');
        await receiver;
      } else {
        expect(line, check.stdout).toContain(`pg_receivewal: FAILED (/usr/bin/pg_receivewal is pg_receivewal 15, which cannot serve PostgreSQL ${major}: it needs one of PostgreSQL ${major} or newer)`);
        const hint = `install PostgreSQL ${major}'s client programs (Debian/Ubuntu: apt install postgresql-client-${major}, from apt.postgresql.org; RHEL: dnf install postgresql${major}), or set pg_bin_dir in servers.pg to a directory holding pg_receivewal ${major} or newer`;
        expect(check.stdout).toContain(`HINT: ${hint}`);
        // receive-wal stops at once, saying the same, and creates no slot that would hold WAL for nothing.
        const receive = await pgharbor(['--config', config, 'receive-wal', 'pg'], { asPgUser: true });
        expect(receive.exitCode).toBe(1);
        expect(receive.stderr).toContain(`receive-wal pg: /usr/bin/pg_receivewal is pg_receivewal 15, which cannot serve PostgreSQL ${major}`);
        expect(receive.stderr).toContain(`HINT: ${hint}`);
        expect(await ws.cluster.query('SELECT 1 FROM pg_replication_slots')).toEqual([]);
      }
    });
  }
});

/**
 * The rsync method on the oldest major: 13 and 14 start and stop a backup
 * with pg_start_backup/pg_stop_backup, 15 on with pg_backup_start/
 * pg_backup_stop (rsync-backup.test.ts, on 15).
 */
describe('rsync method on PostgreSQL 13', () => {
  let sshd: SandboxSshd | undefined;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.destroy());

  it.each([13])('PostgreSQL %i: backup over ssh, restore, the data matches', async (major) => {
    const ws = await createWorkspace({ cluster: { pgBin: pgBinForMajor(major) }, asPgUser: true, archive: true, serverExtra: ['method: rsync'] });
    try {
      const { keyFile, knownHosts } = await sshFilesForPgUser(sshd!, ws.dir);
      const ssh = `ssh -p ${sshd!.port} -i ${keyFile} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes ${sshd!.user}@127.0.0.1`;
      await writeFile(ws.configFile, (await readFile(ws.configFile, 'utf8')).replace('    repositories:', `    ssh_command: "${ssh}"\n    repositories:`));
      await ws.cluster.pgbench(['-i', '-s', '1', '-q']);
      const source = await pgbenchChecksums(ws.cluster);
      const backup = await ws.run(['--json', 'backup', 'pg']);
      expect(backup.stderr, backup.stderr).not.toMatch(/ERROR/);
      expect(JSON.parse(backup.stdout).method).toBe('rsync');
      const target = await ws.restoreTarget();
      const restore = await ws.run(['restore', 'pg', 'latest', target, '--target-immediate', '--target-action', 'promote']);
      expect(restore.exitCode, restore.stderr).toBe(0);
      const restored = await ws.startRestored(target);
      await waitPromoted(restored);
      expect(await pgbenchChecksums(restored)).toEqual(source);
    } finally {
      await ws.cleanup();
    }
  });
});
