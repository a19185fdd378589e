import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chownToPgUser } from '@pgharbor/sandbox';
import { createTablespaceWithTable, createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

/**
 * The walking skeleton's promise: a backup of a running cluster restores
 * into a directory that PostgreSQL starts on, holding the same data.
 */
describe('backup and restore with pg_basebackup into a posix repository', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace();
    await ws.cluster.pgbench(['-i', '-s', '5', '-q', 'postgres']);
    await ws.cluster.pgbench(['-t', '200', '-c', '2', 'postgres']); // fills pgbench_history too
  });
  afterAll(async () => ws?.cleanup());

  it('backs up, lists, shows, restores, starts, and the data is identical', async () => {
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    const manifest = JSON.parse(backup.stdout);
    expect(manifest.status).toBe('DONE');
    expect(manifest.startWal).toMatch(/^[0-9A-F]{24}$/);
    expect(manifest.walIncluded).toBe(true);

    const list = await ws.run(['list-backups', 'pg']);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toContain(`pg ${manifest.id}`);
    expect(list.stdout).toMatch(/Size: [\d.]+ MiB/);

    const show = await ws.run(['show-backup', 'pg', 'latest']);
    expect(show.stdout).toContain(`Backup ${manifest.id}:`);
    expect(show.stdout).toMatch(/Status\s+: DONE/);
    expect(show.stdout).toContain(`System Id              : ${manifest.systemIdentifier}`);

    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', manifest.id, target]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    expect(restore.stdout).toContain('every checksum verified');

    const source = await pgbenchChecksums(ws.cluster);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    // The restored server has the identity of the source cluster.
    const [{ id }] = await restored.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    expect(id).toBe(manifest.systemIdentifier);
  });

  it('a backup taken while pgbench writes restores to a consistent cluster', async () => {
    // -n: no vacuum, which would truncate pgbench_history and break the invariant below.
    const load = ws.cluster.pgbench(['-n', '-T', '6', '-c', '2', 'postgres']);
    await new Promise((r) => setTimeout(r, 1000));
    const backup = await ws.run(['--json', 'backup', 'pg']);
    await load;
    expect(backup.exitCode).toBe(0);
    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', target])).exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    // pgbench keeps these four sums equal in every committed state: a torn
    // copy without the WAL replayed would break the invariant.
    const [sums] = await restored.query<Record<string, string>>(`
      SELECT (SELECT sum(abalance) FROM pgbench_accounts)::text AS a,
             (SELECT sum(bbalance) FROM pgbench_branches)::text AS b,
             (SELECT sum(tbalance) FROM pgbench_tellers)::text AS t,
             (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::text AS h`);
    expect(sums.a).toBe(sums.b);
    expect(sums.b).toBe(sums.t);
    expect(sums.t).toBe(sums.h);
    const [{ n }] = await restored.query<{ n: string }>('SELECT count(*)::text AS n FROM pgbench_accounts');
    expect(n).toBe('500000');
  });

  it('show-backup links previous and next backups; list-files lists data and WAL', async () => {
    const list = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string }[];
    expect(list.length).toBeGreaterThanOrEqual(2);
    const [newest, older] = list;
    const show = JSON.parse((await ws.run(['--json', 'show-backup', 'pg', older.id])).stdout);
    expect(show.nextBackup).toBe(newest.id);
    const wal = await ws.run(['list-files', 'pg', newest.id, '--target', 'wal']);
    expect(wal.stdout.trim().split('\n').every((line) => /^pg_wal\/[0-9A-F]{24}$/.test(line))).toBe(true);
    const data = await ws.run(['list-files', 'pg', newest.id, '--target', 'data']);
    expect(data.stdout).toContain('global/pg_control');
    expect(data.stdout).toContain('PG_VERSION');
  });

  it('a corrupted bundle stops the restore with the file name, and the target cannot start', async () => {
    const { id, files } = JSON.parse((await ws.run(['--json', 'list-files', 'pg', 'latest'].slice(0, 0).concat(['--json', 'show-backup', 'pg', 'latest']))).stdout);
    expect(files).toBeUndefined(); // summaries never carry the file list
    const listing = JSON.parse((await ws.run(['--json', 'list-files', 'pg', id, '--target', 'data'])).stdout) as { path: string; bundle: number; offset: number; size: number }[];
    const victim = listing.find((f) => f.path === 'PG_VERSION')!;
    const bundle = path.join(ws.repoDir, 'pg', 'backups', id, `bundle-${String(victim.bundle).padStart(6, '0')}.dat`);
    const original = await readFile(bundle);
    const damaged = Buffer.from(original);
    damaged[victim.offset] ^= 0xff;
    await writeFile(bundle, damaged);
    try {
      const target = await ws.restoreTarget();
      const restore = await ws.run(['restore', 'pg', id, target]);
      expect(restore.exitCode).toBe(1);
      expect(restore.stderr).toContain('PG_VERSION does not match its checksum');
      expect(restore.stderr).toMatch(/HINT: .*incomplete/);
      expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
    } finally {
      await writeFile(bundle, original);
    }
  });

  it('delete removes every object of a backup', async () => {
    const list = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string }[];
    const oldest = list.at(-1)!.id;
    const result = await ws.run(['delete', 'pg', oldest]);
    expect(result.exitCode).toBe(0);
    expect(existsSync(path.join(ws.repoDir, 'pg', 'backups', oldest))).toBe(false);
    const after = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string }[];
    expect(after.map((b) => b.id)).not.toContain(oldest);
    expect(after.length).toBe(list.length - 1);
  });

  it('repository files are private: 0600 files in 0700 directories', async () => {
    const walk = async (dir: string): Promise<void> => {
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(p);
        else expect((await stat(p)).mode & 0o777).toBe(0o600);
      }
    };
    await walk(path.join(ws.repoDir, 'pg'));
  });
});

describe('a cluster with a tablespace', () => {
  let ws: Workspace;
  let spaceDir: string;

  beforeAll(async () => {
    ws = await createWorkspace();
    spaceDir = await createTablespaceWithTable(ws);
  });
  afterAll(async () => ws?.cleanup());

  it('backs up the tablespace and restores it to a mapped location', async () => {
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    const manifest = JSON.parse(backup.stdout);
    expect(manifest.tablespaces).toEqual([expect.objectContaining({ name: 'extra', location: spaceDir })]);

    const target = await ws.restoreTarget();
    const mapped = path.join(ws.dir, 'space-restored');
    await mkdir(mapped, { mode: 0o700 });
    await chownToPgUser(mapped);
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--tablespace-map', `extra=${mapped}`]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    expect((await readdir(mapped)).some((name) => name.startsWith('PG_15'))).toBe(true);

    const before = await ws.cluster.tableChecksum('postgres', 'far', 'id');
    // The source cluster must not see its tablespace directory touched by the restore.
    await ws.cluster.stop();
    const restored = await ws.startRestored(target);
    expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(before);
    const [{ location }] = await restored.query<{ location: string }>(`SELECT pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname = 'extra'`);
    expect(location).toBe(mapped);
    await restored.stop();
    await ws.cluster.start();
  });

  it('refuses a tablespace map naming a tablespace the backup does not have', async () => {
    const target = await ws.restoreTarget();
    const result = await ws.run(['restore', 'pg', 'latest', target, '--tablespace-map', 'nosuch=/tmp/x']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('has no tablespace "nosuch"');
    expect(await readdir(target)).toEqual([]);
  });
});

it('the pgharbor binary answers --version and --help', async () => {
  const { CLI } = await import('./harness.js');
  const version = await execa(process.execPath, [CLI, '--version']);
  expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  const help = await execa(process.execPath, [CLI, '--help']);
  for (const command of ['check', 'backup', 'list-backups', 'show-backup', 'list-files', 'delete', 'restore', 'list-servers', 'demo']) {
    expect(help.stdout).toContain(command);
  }
});
