import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser, startSshd, type SandboxSshd } from '@pgharbor/sandbox';
import { readManifest } from './repository-access.js';
import { createTablespaceWithTable, createWorkspace, pgbenchChecksums, sshFilesForPgUser, switchAndWaitArchived, waitPromoted, type Workspace } from './harness.js';

/** Sum of sizes and link counts of the files under a tree, counting each inode once. */
async function treeUsage(root: string): Promise<{ bytes: number; files: number; linked: number }> {
  const seen = new Set<number>();
  let bytes = 0;
  let files = 0;
  let linked = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) {
        const info = await stat(p);
        files++;
        if (info.nlink > 1) linked++;
        if (!seen.has(info.ino)) bytes += info.size;
        seen.add(info.ino);
      }
    }
  };
  await walk(root);
  return { bytes, files, linked };
}

/**
 * The rsync method through a real sshd on loopback: pg_backup_start, rsync
 * of the data directory over ssh, pg_backup_stop, WAL archived by
 * archive_command; reuse of the previous backup by hard links.
 */
describe('rsync backups over ssh', () => {
  let sshd: SandboxSshd;
  let ws: Workspace;
  let sshCommand: string;
  const ids: string[] = [];

  const setServerOptions = async (lines: string[]) => {
    const config = await readFile(ws.configFile, 'utf8');
    const base = config.replace(/    # test options start[\s\S]*# test options end\n/, '');
    await writeFile(ws.configFile, base.replace('    repositories:', ['    # test options start', ...lines.map((l) => `    ${l}`), '    # test options end', '    repositories:'].join('\n')));
  };

  /** Restore (with extra restore arguments), start PostgreSQL on it, wait for promotion, hand it over. */
  const restoreAndStart = async (args: string[]) => {
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', ...args.slice(0, 1), target, ...args.slice(1)]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    await waitPromoted(restored);
    return restored;
  };

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await createWorkspace({ asPgUser: true, archive: true, serverExtra: ['method: rsync'] });
    // pgharbor runs as the PostgreSQL OS user (it shares the repository with archive_command): give it the key.
    const { keyFile, knownHosts } = await sshFilesForPgUser(sshd, ws.dir);
    sshCommand = `ssh -p ${sshd.port} -i ${keyFile} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes ${sshd.user}@127.0.0.1`;
    await setServerOptions([`ssh_command: "${sshCommand}"`]);
    // Accounts in 20 partitions (20 files): a change to 1% of the rows touches one of them.
    await ws.cluster.pgbench(['-i', '-s', '4', '-q', '--partitions', '20', 'postgres']);
    // Hint bits and visibility maps settled now, so that later reads and autovacuum do not rewrite every file.
    await ws.cluster.query('VACUUM (FREEZE, ANALYZE)');
  }, 120_000);
  afterAll(async () => {
    await ws?.cleanup();
    await sshd?.destroy();
  });

  it('check reports ssh, rsync on both ends, the data directory and privileges', async () => {
    const result = await ws.run(['check', 'pg']);
    expect(result.stdout).toMatch(/ssh: OK/);
    expect(result.stdout).toMatch(/rsync \(local\): OK/);
    expect(result.stdout).toMatch(/rsync \(remote\): OK/);
    expect(result.stdout).toMatch(/data directory over ssh: OK/);
    expect(result.stdout).toMatch(/backup privileges: OK/);
    expect(result.stdout).toMatch(/WAL archiving for rsync: OK/);
  });

  it('takes a full backup as a plain tree, and it restores to the same data', async () => {
    const result = await ws.run(['--json', 'backup', 'pg']);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    const manifest = JSON.parse(result.stdout);
    expect(manifest.status).toBe('DONE');
    expect(manifest.method).toBe('rsync');
    expect(manifest.walIncluded).toBe(false);
    ids.push(manifest.id);
    const tree = path.join(ws.repoDir, 'pg', 'trees', manifest.id);
    // The copy holds the data files, the backup_label from pg_backup_stop, and nothing the docs say to skip.
    expect(existsSync(path.join(tree, 'global', 'pg_control'))).toBe(true);
    expect(await readFile(path.join(tree, 'backup_label'), 'utf8')).toMatch(/START WAL LOCATION/);
    expect(existsSync(path.join(tree, 'postmaster.pid'))).toBe(false);
    expect(await readdir(path.join(tree, 'pg_wal'))).toEqual([]);

    const source = await pgbenchChecksums(ws.cluster);
    const restored = await restoreAndStart([manifest.id]);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();
  }, 180_000);

  it('a second backup with reuse link hard-links unchanged files: it stores only what changed', async () => {
    // 1% of the accounts change (all in the first partition).
    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 4000');
    await ws.cluster.query('CHECKPOINT');
    const result = await ws.run(['--json', 'backup', 'pg']);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    const manifest = JSON.parse(result.stdout);
    ids.push(manifest.id);
    expect(manifest.reuse).toBe('link');
    const first = await treeUsage(path.join(ws.repoDir, 'pg', 'trees', ids[0]));
    const both = await treeUsage(path.join(ws.repoDir, 'pg', 'trees'));
    const second = await treeUsage(path.join(ws.repoDir, 'pg', 'trees', ids[1]));
    // Most files are shared (link count 2), and the repository grew by far less than a full copy.
    expect(second.linked).toBeGreaterThan(second.files * 0.8);
    const growth = both.bytes - first.bytes;
    expect(growth).toBeLessThan(first.bytes * 0.25);
    expect(manifest.reusedSize).toBeGreaterThan(manifest.size * 0.75);
    expect(manifest.storedSize).toBe(manifest.size - manifest.reusedSize);

    const show = await ws.run(['show-backup', 'pg', manifest.id]);
    expect(show.stdout).toMatch(/Incremental size\s*: .*\(-\d+\.\d\d%, reuse link\)/);
  }, 180_000);

  it('deleting the first backup leaves the second restorable', async () => {
    const source = await pgbenchChecksums(ws.cluster);
    const del = await ws.run(['delete', 'pg', ids[0]]);
    expect(del.stderr).not.toMatch(/ERROR/);
    expect(del.exitCode).toBe(0);
    expect(existsSync(path.join(ws.repoDir, 'pg', 'trees', ids[0]))).toBe(false);
    const verify = await ws.run(['verify', 'pg', ids[1]]);
    expect(verify.exitCode).toBe(0);
    const restored = await restoreAndStart([ids[1]]);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();
  }, 180_000);

  it('recovers to a point in time from an rsync backup (parallel jobs, compressed, rate-limited, reuse copy) and archived WAL', async () => {
    await ws.cluster.query('CREATE TABLE pitr (id int)');
    await ws.cluster.query('INSERT INTO pitr SELECT generate_series(1, 50)');
    await setServerOptions([`ssh_command: "${sshCommand}"`, 'parallel_jobs: 3', 'network_compression: true', 'bandwidth_limit: 500M']);
    const backup = await ws.run(['--json', '--log-level', 'debug', 'backup', 'pg', '--reuse-backup', 'copy']);
    await setServerOptions([`ssh_command: "${sshCommand}"`]);
    expect(backup.stderr).toMatch(/reuse copy, 3 jobs/);
    expect(backup.exitCode).toBe(0);
    const copied = JSON.parse(backup.stdout);
    expect(copied.reuse).toBe('copy');
    // copy: unchanged files come from the previous tree, but as copies of their own (no shared inodes).
    expect((await treeUsage(path.join(ws.repoDir, 'pg', 'trees', copied.id))).linked).toBe(0);
    await ws.cluster.query('INSERT INTO pitr SELECT generate_series(51, 80)');
    await switchAndWaitArchived(ws.cluster);
    const [{ now }] = await ws.cluster.query<{ now: string }>('SELECT now()::text AS now');
    await new Promise((r) => setTimeout(r, 100));
    await ws.cluster.query('DROP TABLE pitr');
    await switchAndWaitArchived(ws.cluster);

    const restored = await restoreAndStart(['latest', '--target-time', now, '--target-action', 'promote']);
    const [{ n }] = await restored.query<{ n: number }>('SELECT count(*)::int AS n FROM pitr');
    expect(n).toBe(80);
    await restored.stop();
  }, 180_000);

  describe('bad input: clear errors, the backup ends FAILED, nothing DONE', () => {
    const failedBackup = async (expected: RegExp) => {
      const before = (JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string }[]).length;
      const result = await ws.run(['backup', 'pg']);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(expected);
      const list = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string; status: string }[];
      expect(list.length).toBe(before + 1);
      const newest = list.reduce((a, b) => (a.id > b.id ? a : b));
      expect(newest.status).toBe('FAILED');
      // The session that ran pg_backup_start is gone: no backup left running on the server.
      const sessions = await ws.cluster.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE '%pg_backup_start%' AND pid <> pg_backend_pid()`);
      expect(sessions[0].n).toBe(0);
      return result;
    };

    it('the database host unreachable by ssh', async () => {
      await setServerOptions([`ssh_command: "${sshCommand.replace(`-p ${sshd.port}`, '-p 1')}"`]);
      try {
        const result = await failedBackup(/ERROR: .*ssh to \S+ failed: .*Connection refused/);
        expect(result.stderr).toMatch(/HINT: check ssh_command/);
      } finally {
        await setServerOptions([`ssh_command: "${sshCommand}"`]);
      }
    }, 60_000);

    it('rsync missing on this host, and on the database host', async () => {
      await setServerOptions([`ssh_command: "${sshCommand}"`, 'local_rsync_path: /nonexistent/rsync']);
      try {
        await failedBackup(/ERROR: .*rsync is not installed on this host/);
      } finally {
        await setServerOptions([`ssh_command: "${sshCommand}"`]);
      }
      await setServerOptions([`ssh_command: "${sshCommand}"`, 'remote_rsync_path: /nonexistent/rsync']);
      try {
        const result = await failedBackup(/ERROR: .*rsync is not runnable on 127\.0\.0\.1/);
        expect(result.stderr).toMatch(/HINT: install rsync on 127\.0\.0\.1, or set remote_rsync_path/);
      } finally {
        await setServerOptions([`ssh_command: "${sshCommand}"`]);
      }
    }, 60_000);

    it('pg_backup_start refused for lack of privileges', async () => {
      // It may read settings (as a monitoring role does), but not start a backup.
      await ws.cluster.query(`DROP ROLE IF EXISTS weak; CREATE ROLE weak LOGIN IN ROLE pg_read_all_settings, pg_monitor`);
      const config = await readFile(ws.configFile, 'utf8');
      const conninfo = /conninfo: "([^"]*)"/.exec(config)![1];
      await writeFile(ws.configFile, config.replace(conninfo, conninfo.replace(/user=\S+/, 'user=weak')));
      try {
        const result = await failedBackup(/ERROR: server pg: pg_backup_start\(\) refused: permission denied/);
        expect(result.stderr).toMatch(/GRANT EXECUTE ON FUNCTION pg_backup_start\(text, boolean\)/);
      } finally {
        await writeFile(ws.configFile, config);
      }
    }, 60_000);

    it('a good backup still works afterwards', async () => {
      const result = await ws.run(['--json', 'backup', 'pg']);
      expect(result.stderr).not.toMatch(/ERROR/);
      expect(JSON.parse(result.stdout).status).toBe('DONE');
    }, 120_000);
  });

  it('into a repository that cannot hold a tree (encrypted): a local mirror, unchanged files referenced, not stored again', async () => {
    const passphrase = path.join(ws.dir, 'passphrase');
    await writeFile(passphrase, 'correct horse battery staple rsync\n', { mode: 0o600 });
    await chownToPgUser(passphrase);
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, config.replace('      - { type: posix, path: ./repo }', '      - { type: posix, path: ./repo }\n      - { type: posix, name: vault, path: ./repo-enc, encryption: { passphrase: { from_file: ./passphrase } } }'));
    await setServerOptions([`ssh_command: "${sshCommand}"`, 'staging_dir: ./mirror']);

    const first = await ws.run(['--json', 'backup', 'pg', '--repo', '2']);
    expect(first.stderr).not.toMatch(/ERROR/);
    const one = JSON.parse(first.stdout);
    expect(one.status).toBe('DONE');
    expect(existsSync(path.join(ws.dir, 'repo-enc', 'pg', 'trees'))).toBe(false);
    expect(existsSync(path.join(ws.dir, 'mirror', 'pg', 'vault', 'global', 'pg_control'))).toBe(true);

    await ws.cluster.query('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 4000');
    const second = await ws.run(['--json', 'backup', 'pg', '--repo', '2']);
    expect(second.stderr).not.toMatch(/ERROR/);
    const two = JSON.parse(second.stdout);
    expect(two.reuse).toBe('reference');
    expect(two.reusedSize).toBeGreaterThan(two.size * 0.75);
    expect(two.storedSize).toBeLessThan(one.storedSize * 0.25);
    const manifest = await readManifest(ws.configFile, two.id, 2); // sealed: read with the key
    expect(manifest.files.filter((f: { reference?: string }) => f.reference === one.id).length).toBeGreaterThan(10);
    // Still encrypted: nothing of the tree, every stored file sealed.
    expect(manifest.files.filter((f: { type: string; size: number }) => f.type === 'file' && f.size > 0).every((f: { encryption: string }) => f.encryption === 'aes-256-gcm')).toBe(true);

    const source = await pgbenchChecksums(ws.cluster);
    const restored = await restoreAndStart([two.id, '--repo', '2']);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();

    // The first backup holds bytes the second needs: deleting it alone is refused, naming them; with its dependents, both go, newest first.
    const shown = await ws.run(['show-backup', 'pg', one.id, '--repo', '2']);
    expect(shown.stdout).toMatch(new RegExp(`Needed by\\s*: ${two.id}`));
    const refused = await ws.run(['delete', 'pg', one.id, '--repo', '2']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`backup ${one.id} of pg is needed by ${two.id} (full): they cannot be restored without it`);
    expect(refused.stderr).toContain(`pgharbor delete pg ${one.id} --with-dependents`);
    const forced = await ws.run(['delete', 'pg', one.id, '--repo', '2', '--force']); // --force is about minimum_redundancy, not dependents
    expect(forced.exitCode).toBe(1);
    const both = await ws.run(['--json', 'delete', 'pg', one.id, '--repo', '2', '--with-dependents']);
    expect(both.stderr).not.toMatch(/ERROR/);
    expect(JSON.parse(both.stdout)).toEqual({ deleted: one.id, dependents: [two.id], repository: 'vault' });
    expect((await ws.run(['list-backups', 'pg', '--repo', '2'])).stdout).toBe('No backups of pg.');
  }, 240_000);

  it('copies a tablespace from its own location, and restores it to a mapped one', async () => {
    const spaceDir = await createTablespaceWithTable(ws);
    const backup = await ws.run(['--json', 'backup', 'pg', '--repo', '1']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    const manifest = JSON.parse(backup.stdout);
    expect(manifest.tablespaces).toEqual([expect.objectContaining({ name: 'extra', location: spaceDir })]);
    const tree = path.join(ws.repoDir, 'pg', 'trees', manifest.id);
    const oid = manifest.tablespaces[0].oid;
    expect((await readdir(path.join(tree, 'pg_tblspc', String(oid)))).some((name) => name.startsWith('PG_15'))).toBe(true);
    expect(await readFile(path.join(tree, 'tablespace_map'), 'utf8')).toContain(`${oid} ${spaceDir}`);

    const mapped = path.join(ws.dir, 'space-restored');
    await mkdir(mapped, { mode: 0o700 });
    await chownToPgUser(mapped);
    const before = await ws.cluster.tableChecksum('postgres', 'far', 'id');
    const restored = await restoreAndStart([manifest.id, '--repo', '1', '--tablespace-map', `extra=${mapped}`]);
    expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(before);
    const [{ location }] = await restored.query<{ location: string }>(`SELECT pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname = 'extra'`);
    expect(location).toBe(mapped);
    await restored.stop();
  }, 240_000);
});
