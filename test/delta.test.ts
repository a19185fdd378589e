import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile, lstat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chownToPgUser, pgBinDir, pgOsUser } from '@pgharbor/sandbox';
import { createTablespaceWithTable, createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

/** path → sha256 of every file, and every directory and link, under `root`. */
async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      const rel = path.relative(root, p);
      if (entry.isDirectory()) {
        out[rel + '/'] = 'dir';
        await walk(p);
      } else if (entry.isSymbolicLink()) out[rel] = 'link';
      else {
        let bytes = await readFile(p);
        // The recovery settings' comment carries the time of the restore.
        if (rel === 'postgresql.auto.conf') bytes = Buffer.from(bytes.toString('utf8').replace(/(# written by pgharbor restore of backup \S+) at \S+/g, '$1'));
        out[rel] = createHash('sha256').update(bytes).digest('hex');
      }
    }
  };
  await walk(root);
  return out;
}

interface RestoreJson {
  bytes: number;
  seconds: number;
  delta?: { keptFiles: number; keptBytes: number; copiedFiles: number; copiedBytes: number; removed: number; checkedBytes: number };
}

/**
 * restore --delta: the seed's way back from a damaged cluster. Only what
 * differs is copied; the result equals a full restore; a running cluster
 * or another cluster's directory is refused and left untouched.
 */
describe('delta restore', () => {
  let ws: Workspace;
  let backupId: string;
  let target: string;
  let fullSeconds: number;
  let source: Record<string, string>;

  beforeAll(async () => {
    ws = await createWorkspace();
    await ws.cluster.pgbench(['-i', '-s', '5', '-q', 'postgres']);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.exitCode).toBe(0);
    backupId = JSON.parse(backup.stdout).id;
    source = await pgbenchChecksums(ws.cluster);
    target = await ws.restoreTarget('data');
    const full = await ws.run(['--json', 'restore', 'pg', backupId, target]);
    expect(full.exitCode).toBe(0);
    fullSeconds = (JSON.parse(full.stdout) as RestoreJson).seconds;
  });
  afterAll(async () => ws?.cleanup());

  it('refuses a running cluster, and changes nothing', async () => {
    const restored = await ws.startRestored(target);
    // A few rows (in the small tables: a relation file is the unit a delta restore copies).
    await restored.query('UPDATE pgbench_tellers SET tbalance = tbalance + 7 WHERE tid <= 3');
    await restored.query('UPDATE pgbench_branches SET bbalance = bbalance + 7 WHERE bid = 1');
    await restored.query('CREATE TABLE extra_table AS SELECT generate_series(1, 50000) AS id');
    await restored.query('CHECKPOINT');
    const before = await tree(target);
    const result = await ws.run(['restore', 'pg', backupId, target, '--delta']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/PostgreSQL is running in .* \(postmaster\.pid names the live process \d+\)/);
    expect(result.stderr).toContain('nothing was changed');
    expect(await tree(target)).toEqual(before);
    await restored.stop();
  });

  it('refuses another cluster\'s data directory, and a directory that is no data directory', async () => {
    // A cluster of its own (the sandbox's clusters are copies of one template: one system identifier).
    const otherDir = await ws.restoreTarget('other-cluster');
    const user = pgOsUser();
    await execa(path.join(pgBinDir(), 'initdb'), ['-D', otherDir, '-A', 'trust', '-U', 'postgres', '--no-sync'], { uid: user.uid, gid: user.gid, cwd: '/', env: { ...process.env, HOME: ws.dir } });
    const before = await tree(otherDir);
    const result = await ws.run(['restore', 'pg', backupId, otherDir, '--delta']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/belongs to another cluster \(system identifier \d+\); backup .* is of \d+/);
    expect(await tree(otherDir)).toEqual(before);
    const stray = await ws.restoreTarget('not-a-data-dir');
    await writeFile(path.join(stray, 'notes.txt'), 'hello');
    const refused = await ws.run(['restore', 'pg', backupId, stray, '--delta']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('has no global/pg_control');
    expect(await readdir(stray)).toEqual(['notes.txt']);
  });

  it('after a few changed rows, a deleted file and an extra one: keeps most bytes, equals a full restore, and starts with the backup\'s data', async () => {
    // Damage the (stopped) restored cluster some more.
    const [victim] = (await readdir(path.join(target, 'global'))).filter((n) => /^\d+$/.test(n));
    await rm(path.join(target, 'global', victim));
    await writeFile(path.join(target, 'base', 'stray-file'), 'not from the backup');
    const reference = await ws.restoreTarget('full-reference');
    expect((await ws.run(['restore', 'pg', backupId, reference])).exitCode).toBe(0);

    const result = await ws.run(['--json', 'restore', 'pg', backupId, target, '--delta']);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    const summary = JSON.parse(result.stdout) as RestoreJson;
    const d = summary.delta!;
    // Copied: the changed tables' files, pg_xact, the WAL segment the restored server wrote into, pg_control.
    expect(d.keptBytes).toBeGreaterThan(4 * d.copiedBytes);
    expect(d.removed).toBeGreaterThanOrEqual(2); // the stray file, extra_table's files, postmaster.opts…
    console.log(
      `delta restore: kept ${d.keptFiles} files (${(d.keptBytes / 2 ** 20).toFixed(1)} MiB), copied ${d.copiedFiles} (${(d.copiedBytes / 2 ** 20).toFixed(1)} MiB), removed ${d.removed}, in ${summary.seconds.toFixed(2)} s; full restore ${fullSeconds.toFixed(2)} s`,
    );
    expect(existsSync(path.join(target, 'global', victim))).toBe(true);
    expect(existsSync(path.join(target, 'base', 'stray-file'))).toBe(false);
    expect(existsSync(path.join(target, 'global', 'pg_control.pgharbor-delta'))).toBe(false);
    expect((await stat(path.join(target, 'global', 'pg_control'))).size).toBe(8192);
    expect((await lstat(target)).isDirectory()).toBe(true);

    // Byte for byte what a full restore gives.
    expect(await tree(target)).toEqual(await tree(reference));
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    const [{ n }] = await restored.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_class WHERE relname = 'extra_table'`);
    expect(n).toBe('0');
    await restored.stop();
  });

  it('into an empty directory, --delta is a plain restore', async () => {
    const empty = await ws.restoreTarget('empty-delta');
    const result = await ws.run(['--json', 'restore', 'pg', backupId, empty, '--delta']);
    expect(result.exitCode).toBe(0);
    expect((JSON.parse(result.stdout) as RestoreJson).delta).toBeUndefined();
    expect(existsSync(path.join(empty, 'global', 'pg_control'))).toBe(true);
  });
});

describe('delta restore with a tablespace', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace();
    await createTablespaceWithTable(ws);
  });
  afterAll(async () => ws?.cleanup());

  it('cleans only the cluster\'s own directory in the tablespace, and the result equals a full restore', async () => {
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.exitCode).toBe(0);
    const id = JSON.parse(backup.stdout).id as string;
    const before = await ws.cluster.tableChecksum('postgres', 'far', 'id');
    const target = await ws.restoreTarget('data');
    const mapped = path.join(ws.dir, 'space-restored');
    await mkdir(mapped, { mode: 0o700 });
    await chownToPgUser(mapped);
    expect((await ws.run(['restore', 'pg', id, target, '--tablespace-map', `extra=${mapped}`])).exitCode).toBe(0);

    // Damage inside the tablespace: a changed table, a stray file in our version directory, and a
    // neighbour's directory beside it (another cluster's PG_16_..., say) that must be left alone.
    await ws.cluster.stop();
    const restored = await ws.startRestored(target);
    await restored.query('UPDATE far SET note = note || \'x\' WHERE id <= 10');
    await restored.stop();
    const [versionDir] = (await readdir(mapped)).filter((n) => n.startsWith('PG_15'));
    await writeFile(path.join(mapped, versionDir, 'stray'), 'not ours');
    await mkdir(path.join(mapped, 'PG_16_202307071'));
    await writeFile(path.join(mapped, 'PG_16_202307071', 'neighbour'), 'someone else\'s');

    const result = await ws.run(['--json', 'restore', 'pg', id, target, '--delta', '--tablespace-map', `extra=${mapped}`]);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    const d = (JSON.parse(result.stdout) as RestoreJson).delta!;
    expect(d.keptFiles).toBeGreaterThan(900);
    expect(existsSync(path.join(mapped, versionDir, 'stray'))).toBe(false);
    expect(await readFile(path.join(mapped, 'PG_16_202307071', 'neighbour'), 'utf8')).toBe("someone else's");
    await rm(path.join(mapped, 'PG_16_202307071'), { recursive: true });

    const referenceData = await ws.restoreTarget('reference');
    const referenceSpace = path.join(ws.dir, 'space-reference');
    await mkdir(referenceSpace, { mode: 0o700 });
    await chownToPgUser(referenceSpace);
    expect((await ws.run(['restore', 'pg', id, referenceData, '--tablespace-map', `extra=${referenceSpace}`])).exitCode).toBe(0);
    expect(await tree(mapped)).toEqual(await tree(referenceSpace));
    const again = await ws.startRestored(target);
    expect(await again.tableChecksum('postgres', 'far', 'id')).toBe(before);
    const [{ location }] = await again.query<{ location: string }>(`SELECT pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname = 'extra'`);
    expect(location).toBe(mapped);
    await again.stop();
    await ws.cluster.start();
  });
});
