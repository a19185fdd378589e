import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser, freePort, pgOsUser, startSshd, type SandboxSshd } from '@pgharbor/sandbox';
import { createWorkspace, switchAndWaitArchived, waitFor, waitPromoted, type Workspace } from './harness.js';

/** What the restored cluster runs to read the WAL copied next to it. */
const RESTORE_COMMAND = 'test -f pgharbor_wal/%f && exec cp pgharbor_wal/%f %p; test -f pgharbor_wal/%f.partial && exec cp pgharbor_wal/%f.partial %p; exit 1';

/**
 * The seed's `barman recover --remote-ssh-command "ssh postgres@pgb"
 * --target-time …`: restore onto another host reached by ssh as the
 * postgres OS user (here a private sshd on loopback), start PostgreSQL
 * there, find it paused at the target, promote it with
 * pg_wal_replay_resume().
 */
describe('restore onto another host over ssh (--remote-ssh-command)', () => {
  let ws: Workspace;
  let sshd: SandboxSshd;
  let ssh: string;
  /** Stands for the remote host's filesystem: owned by postgres, the ssh user. */
  let remoteRoot: string;
  let staging: string;
  let spaceDir: string;
  let targetTime: string;
  let keptAtT: string;
  let farAtT: string;
  const pg = pgOsUser();
  /** Lines the recovery hook scripts wrote since the last call. */
  const hookLog = async () => {
    const file = path.join(ws.dir, 'recovery-hooks.log');
    const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    await writeFile(file, '');
    return lines;
  };

  const sshCommand = (port: number) =>
    [
      'ssh', '-p', String(port), '-i', sshd.clientKeyFile,
      '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
      '-o', 'ConnectTimeout=10',
      `${pg.name}@127.0.0.1`,
    ].join(' ');

  beforeAll(async () => {
    // sshd runs as postgres, so the login is postgres (as in the seed) and the restored files are its.
    sshd = await startSshd({ loginUser: pg });
    ssh = sshCommand(sshd.port);
    ws = await createWorkspace({
      asPgUser: true,
      archive: true,
      serverExtra: ['pre_recovery_script: ./record-recovery.sh', 'post_recovery_script: ./record-recovery.sh'],
    });
    // Barman-style hook scripts: what they are told about a remote restore.
    await writeFile(path.join(ws.dir, 'record-recovery.sh'), `#!/bin/sh\necho "$PGHARBOR_STATUS $PGHARBOR_DESTINATION_DIRECTORY" >> ${path.join(ws.dir, 'recovery-hooks.log')}\n`, { mode: 0o755 });
    await chownToPgUser(path.join(ws.dir, 'record-recovery.sh'));
    remoteRoot = path.join(ws.dir, 'remote-host');
    staging = path.join(ws.dir, 'staging');
    spaceDir = path.join(ws.dir, 'space');
    for (const dir of [remoteRoot, staging, spaceDir]) {
      await mkdir(dir, { mode: 0o700 });
      await chownToPgUser(dir);
    }
    await ws.cluster.query(`CREATE TABLESPACE extra LOCATION '${spaceDir}'`);
    await ws.cluster.query('CREATE TABLE kept (id int PRIMARY KEY, note text)');
    await ws.cluster.query(`INSERT INTO kept SELECT g, md5(g::text) FROM generate_series(1, 5000) g`);
    await ws.cluster.query('CREATE TABLE far (id int PRIMARY KEY, note text) TABLESPACE extra');
    await ws.cluster.query(`INSERT INTO far SELECT g, md5(g::text) FROM generate_series(1, 2000) g`);
    const backup = await ws.run(['backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);

    // A committed change at T, then (later) the destructive one.
    await ws.cluster.query(`INSERT INTO kept VALUES (5001, 'committed before T')`);
    await ws.cluster.query(`UPDATE far SET note = 'changed before T' WHERE id <= 10`);
    [{ t: targetTime }] = await ws.cluster.query<{ t: string }>(`SELECT clock_timestamp()::text AS t`);
    keptAtT = await ws.cluster.tableChecksum('postgres', 'kept', 'id');
    farAtT = await ws.cluster.tableChecksum('postgres', 'far', 'id');
    await new Promise((r) => setTimeout(r, 1100));
    await ws.cluster.query('DROP TABLE kept');
    await ws.cluster.query(`INSERT INTO far VALUES (9999, 'after T')`);
    await switchAndWaitArchived(ws.cluster);
  });
  afterAll(async () => {
    await ws?.cleanup();
    await sshd?.destroy();
  });

  it('the seed\'s scenario: --target-time T onto the other host; PostgreSQL starts there paused at T, pg_wal_replay_resume() promotes it, the dropped table is back', async () => {
    const dest = path.join(remoteRoot, 'main'); // absent: created on the remote host
    const mapped = path.join(remoteRoot, 'extra-space');
    const result = await ws.run([
      'restore', 'pg', 'latest', dest, '--remote-ssh-command', ssh, '--target-time', targetTime,
      '--tablespace-map', `extra=${mapped}`, '--staging-dir', staging,
    ]);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    // What the DBA must do next, as Barman prints it.
    expect(result.stdout).toContain(`Restored backup`);
    expect(result.stdout).toContain(`onto 127.0.0.1: ${dest}`);
    expect(result.stdout).toContain('start PostgreSQL on 127.0.0.1');
    expect(result.stdout).toContain('SELECT pg_wal_replay_resume();');
    expect(result.stdout).toContain("archive_mode = 'off'");
    expect(result.stdout).toContain(`restore_command = '${RESTORE_COMMAND}'`);
    expect(result.stdout).toContain(`Tablespace extra`);
    // The staging copy is gone.
    expect(await readdir(staging)).toEqual([]);
    // Hook scripts name the remote destination, and hear DONE only once it is there.
    expect(await hookLog()).toEqual([`STARTED ${pg.name}@127.0.0.1:${dest}`, `DONE ${pg.name}@127.0.0.1:${dest}`]);

    // Written by the ssh user (postgres), private, complete.
    for (const p of [dest, path.join(dest, 'PG_VERSION'), path.join(dest, 'global', 'pg_control'), path.join(dest, 'pgharbor_wal'), mapped]) {
      const s = await stat(p);
      expect(s.uid, p).toBe(pg.uid);
    }
    expect((await stat(dest)).mode & 0o777).toBe(0o700);
    const autoConf = await readFile(path.join(dest, 'postgresql.auto.conf'), 'utf8');
    expect(autoConf).toContain(`restore_command = '${RESTORE_COMMAND}'`);
    expect(autoConf).toContain(`recovery_end_command = 'rm -fr pgharbor_wal'`);
    expect(autoConf).toContain(`recovery_target_time = '${targetTime}'`);
    expect(autoConf).toMatch(/archive_mode = 'off'/);
    // A copy on another host is detached like a local one: no wait on the origin's synchronous standbys.
    expect(autoConf).toContain("synchronous_standby_names = ''");
    expect(result.stdout).toMatch(/synchronous_standby_names = '': .*--keep-sync/);
    expect(existsSync(path.join(dest, 'recovery.signal'))).toBe(true);
    const wal = await readdir(path.join(dest, 'pgharbor_wal'));
    expect(wal.some((f) => /^[0-9A-F]{24}$/.test(f))).toBe(true);
    expect(wal.every((f) => /^[0-9A-F]{24}(\.partial)?$|^[0-9A-F]{8}\.history$/.test(f))).toBe(true);
    // The tablespace link points at the remote location, not at the staging copy.
    const links = await readdir(path.join(dest, 'pg_tblspc'));
    expect(links).toHaveLength(1);
    const { readlink } = await import('node:fs/promises');
    expect(await readlink(path.join(dest, 'pg_tblspc', links[0]))).toBe(mapped);
    expect((await readdir(mapped)).some((name) => name.startsWith('PG_'))).toBe(true);

    // "start PostgreSQL on HOST": paused at the target, read-only.
    const restored = await ws.startRestored(dest);
    await waitFor('pause at the target', async () => {
      const [row] = await restored.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
      return row.state === 'paused' ? true : undefined;
    });
    const [{ r }] = await restored.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    expect(r).toBe(true);
    // Nothing after T: the row inserted after the drop is not there. The dropped table exists, but reading
    // it would wait: replay stopped inside the DROP's transaction, whose AccessExclusiveLock (WAL-logged for
    // hot standby) the startup process holds until the transaction ends, i.e. until the promotion aborts it.
    expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(farAtT);
    const [{ kept }] = await restored.query<{ kept: string | null }>(`SELECT to_regclass('kept')::text AS kept`);
    expect(kept).toBe('kept');

    await restored.query('SELECT pg_wal_replay_resume()');
    await waitPromoted(restored);
    // The data as at T: the dropped table is back with the change committed before T.
    expect(await restored.tableChecksum('postgres', 'kept', 'id')).toBe(keptAtT);
    expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(farAtT);
    await restored.query(`INSERT INTO kept VALUES (6000, 'writable after promotion')`);
    const [{ location }] = await restored.query<{ location: string }>(`SELECT pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname = 'extra'`);
    expect(location).toBe(mapped);
    // recovery_end_command removed the copied WAL.
    await waitFor('pgharbor_wal removed', async () => (existsSync(path.join(dest, 'pgharbor_wal')) ? undefined : true));
    await restored.stop();
  });

  it('--json reports the remote destination, host and copied WAL (a path with a blank and a quote survives ssh and rsync)', async () => {
    const dest = path.join(remoteRoot, "json it's");
    const result = await ws.run([
      '--json', 'restore', 'pg', 'latest', dest, '--remote-ssh-command', ssh, '--target-time', targetTime, '--target-action', 'promote',
      '--tablespace-map', `extra=${path.join(remoteRoot, 'json-space')}`, '--staging-dir', staging,
    ]);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      host: '127.0.0.1',
      destination: dest,
      sshCommand: ssh,
      tablespaces: [{ name: 'extra', location: path.join(remoteRoot, 'json-space') }],
      recovery: { archiveRecovery: true, file: `${dest}/postgresql.auto.conf` },
      wal: { directory: `${dest}/pgharbor_wal` },
    });
    expect(report.wal.files).toBeGreaterThan(0);
    expect(report.recovery.settings).toContain(`recovery_target_action = 'promote'`);
    expect(await readdir(staging)).toEqual([]);
    expect(existsSync(path.join(dest, 'global', 'pg_control'))).toBe(true);
  });

  describe('refusals (before anything is written on the remote host) and failures', () => {
    const refuse = async (dest: string, extra: string[], sshLine = ssh) => {
      const result = await ws.run([
        'restore', 'pg', 'latest', dest, '--remote-ssh-command', sshLine, '--target-time', targetTime,
        '--tablespace-map', `extra=${path.join(remoteRoot, 'unused-space')}`, '--staging-dir', staging, ...extra,
      ]);
      expect(result.exitCode).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(await readdir(staging)).toEqual([]);
      expect(existsSync(path.join(remoteRoot, 'unused-space'))).toBe(false);
      return result.stderr;
    };

    it('ssh cannot reach the host (closed port)', async () => {
      const dest = path.join(remoteRoot, 'unreachable');
      const stderr = await refuse(dest, [], sshCommand(await freePort()));
      expect(stderr).toMatch(/ERROR: cannot reach 127\.0\.0\.1 over ssh \("ssh -p \d+ .*"\): .*(Connection refused|port \d+)/);
      expect(stderr).toMatch(/HINT: check that `ssh .* true` works/);
      expect(existsSync(dest)).toBe(false);
    });

    it('the remote destination is not empty', async () => {
      const dest = path.join(remoteRoot, 'occupied');
      await mkdir(dest, { mode: 0o700 });
      await writeFile(path.join(dest, 'PG_VERSION'), '15\n');
      await chownToPgUser(dest);
      const stderr = await refuse(dest, []);
      expect(stderr).toContain(`ERROR: restore target ${dest} on 127.0.0.1 is not empty (e.g. PG_VERSION)`);
      expect(stderr).toContain('HINT: restore into a new or empty directory');
      expect(await readdir(dest)).toEqual(['PG_VERSION']);
    });

    it('a tablespace left at its original location, which is in use there', async () => {
      const dest = path.join(remoteRoot, 'space-in-use');
      const result = await ws.run(['restore', 'pg', 'latest', dest, '--remote-ssh-command', ssh, '--staging-dir', staging]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`ERROR: restore target ${spaceDir} on 127.0.0.1 is not empty`);
      expect(existsSync(dest)).toBe(false);
    });

    it('rsync is missing on the remote host', async () => {
      const dest = path.join(remoteRoot, 'no-rsync');
      const stderr = await refuse(dest, ['--remote-rsync-path', '/nonexistent/rsync']);
      expect(stderr).toContain('ERROR: rsync is not available on 127.0.0.1 (looked for "/nonexistent/rsync" as postgres@127.0.0.1)');
      expect(stderr).toContain('HINT: install rsync on 127.0.0.1');
      expect(existsSync(dest)).toBe(false);
    });

    it('rsync fails while copying: the error says the destination is incomplete, pg_control never arrives, hook scripts hear FAILED', async () => {
      const dest = path.join(remoteRoot, 'broken-copy');
      await hookLog();
      // Found by the check, but it is not rsync: the copy fails after the destination was created.
      const result = await ws.run([
        'restore', 'pg', 'latest', dest, '--remote-ssh-command', ssh, '--target-time', targetTime,
        '--tablespace-map', `extra=${path.join(remoteRoot, 'broken-space')}`, '--staging-dir', staging, '--remote-rsync-path', '/bin/false',
      ]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/ERROR: rsync of .* to 127\.0\.0\.1:.* failed/);
      expect(result.stderr).toContain(`HINT: ${dest} on 127.0.0.1 is incomplete (no global/pg_control, or not yet durable): PostgreSQL refuses to start it; remove it there and restore again`);
      expect(existsSync(path.join(dest, 'global', 'pg_control'))).toBe(false);
      expect(await readdir(staging)).toEqual([]);
      expect(await hookLog()).toEqual([`STARTED ${pg.name}@127.0.0.1:${dest}`, `FAILED ${pg.name}@127.0.0.1:${dest}`]);
    });

    it('a relative destination, a malformed ssh command, --delta', async () => {
      const cases: [string[], RegExp][] = [
        [['relative/dir', '--remote-ssh-command', ssh], /destination on the remote host must be an absolute path/],
        [[path.join(remoteRoot, 'x'), '--remote-ssh-command', 'ssh'], /names no destination/],
        [[path.join(remoteRoot, 'x'), '--remote-ssh-command', "ssh 'postgres@host"], /unbalanced '/],
        [[path.join(remoteRoot, 'x'), '--remote-ssh-command', ssh, '--delta'], /--delta cannot be combined with --remote-ssh-command/],
        [[path.join(remoteRoot, 'x'), '--staging-dir', staging], /--staging-dir needs --remote-ssh-command/],
      ];
      for (const [args, message] of cases) {
        const result = await ws.run(['restore', 'pg', 'latest', ...args]);
        expect(result.exitCode, args.join(' ')).toBe(2);
        expect(result.stderr).toMatch(message);
      }
      expect(existsSync(path.join(remoteRoot, 'x'))).toBe(false);
    });
  });
  // Last: it adds a timeline 2 to the archive.
  it('after a promotion onto timeline 2, the history file travels too and recovery follows the new timeline', async () => {
    // The seed's local PITR, promoted, archiving into the same repository.
    const local = await ws.restoreTarget();
    const localSpace = await ws.restoreTarget('local-space');
    const pitr = await ws.run(['restore', 'pg', 'latest', local, '--target-time', targetTime, '--target-action', 'promote', '--archive-mode', 'preserve', '--tablespace-map', `extra=${localSpace}`]);
    expect(pitr.exitCode, pitr.stderr).toBe(0);
    const promoted = await ws.startRestored(local);
    await waitPromoted(promoted);
    await promoted.query(`INSERT INTO kept VALUES (7000, 'on timeline 2')`);
    await switchAndWaitArchived(promoted);
    await promoted.stop();

    // The backup is from timeline 1; with no target, recovery replays to the end of the newest timeline.
    const dest = path.join(remoteRoot, 'timeline-2');
    const result = await ws.run([
      '--json', 'restore', 'pg', 'latest', dest, '--remote-ssh-command', ssh, '--tablespace-map', `extra=${path.join(remoteRoot, 'timeline-2-space')}`, '--staging-dir', staging,
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    const wal = await readdir(path.join(dest, 'pgharbor_wal'));
    expect(wal).toContain('00000002.history');
    expect(wal.some((f) => /^00000002[0-9A-F]{16}$/.test(f))).toBe(true);
    const restored = await ws.startRestored(dest);
    await waitPromoted(restored);
    const [{ note }] = await restored.query<{ note: string }>('SELECT note FROM kept WHERE id = 7000');
    expect(note).toBe('on timeline 2');
    const [{ file }] = await restored.query<{ file: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
    expect(parseInt(file.slice(0, 8), 16)).toBe(3);
    await restored.stop();
  });
});
