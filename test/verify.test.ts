import { readFile, readdir, rename, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, switchAndWaitArchived, type Workspace } from './harness.js';

interface StoredFileEntry {
  path: string;
  type: string;
  size: number;
  storedSize?: number;
  bundle?: number;
  offset?: number;
}

interface Report {
  problems: number;
  backups: {
    backupId: string;
    files: number;
    bytes: number;
    problems: { kind: string; file?: string; message: string }[];
    wal?: { from: string; to: string; checked: number; inBackup: number; missing: string[] };
    pgVerifybackup?: { ran: boolean; skipped?: string; problems: string[] };
  }[];
}

/**
 * verify re-reads what is stored and says exactly what is wrong: a
 * damaged file, a truncated or missing bundle, a WAL segment missing from
 * the archive; exit 1 on any problem.
 */
describe('pgharbor verify', () => {
  let ws: Workspace;
  let backupId: string;
  let segments: string[] = [];

  const bundlePath = (id: string, bundle: number) => path.join(ws.repoDir, 'pg', 'backups', id, `bundle-${String(bundle).padStart(6, '0')}.dat`);
  const manifestFiles = async (id: string): Promise<StoredFileEntry[]> =>
    (JSON.parse(await readFile(path.join(ws.repoDir, 'pg', 'backups', id, 'manifest.json'), 'utf8')) as { files: StoredFileEntry[] }).files.filter((f) => f.type === 'file');
  async function walObject(name: string): Promise<string> {
    const dir = path.join(ws.repoDir, 'pg', 'wal', name.slice(0, 16));
    const found = (await readdir(dir)).find((f) => f.startsWith(`${name}-`))!;
    return path.join(dir, found);
  }
  async function verify(args: string[]): Promise<{ exitCode: number; report: Report; stderr: string }> {
    const result = await ws.run(['--json', 'verify', 'pg', ...args]);
    return { exitCode: result.exitCode, report: JSON.parse(result.stdout || '{}'), stderr: result.stderr };
  }

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
    const text = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, text.replace('- { type: posix, path: ./repo }', '- { type: posix, path: ./repo, compression: zstd, compression_level: 1 }'));
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.exitCode).toBe(0);
    backupId = JSON.parse(backup.stdout).id;
    for (let i = 0; i < 3; i++) {
      await ws.cluster.query(`CREATE TABLE t${i} AS SELECT generate_series(1, 1000) AS id`);
      segments.push(await switchAndWaitArchived(ws.cluster));
    }
    segments = segments.sort();
  });
  afterAll(async () => ws?.cleanup());

  it('a sound backup: every file read back, the WAL range and the archive after it complete; pg_verifybackup agrees', async () => {
    const { exitCode, report, stderr } = await verify([backupId, '--wal', '--pg-verifybackup']);
    expect(stderr).toBe('');
    expect(exitCode).toBe(0);
    expect(report.problems).toBe(0);
    const [b] = report.backups;
    expect(b.files).toBeGreaterThan(900);
    expect(b.wal!.inBackup).toBeGreaterThanOrEqual(1);
    expect(b.wal!.checked).toBeGreaterThanOrEqual(3);
    expect(b.wal!.to >= segments.at(-1)!).toBe(true);
    expect(b.pgVerifybackup).toMatchObject({ ran: true, problems: [] });
    const text = await ws.run(['verify', 'pg']);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain('every checksum matches');
  });

  it('a flipped byte: names the file, exit 1; restore stops on the same file', async () => {
    const victim = (await manifestFiles(backupId)).filter((f) => f.path.startsWith('base/')).sort((a, b) => b.storedSize! - a.storedSize!)[0];
    const file = bundlePath(backupId, victim.bundle!);
    const original = await readFile(file);
    const damaged = Buffer.from(original);
    damaged[victim.offset! + Math.floor(victim.storedSize! / 3)] ^= 0x10;
    await writeFile(file, damaged);
    try {
      const { exitCode, report } = await verify([backupId]);
      expect(exitCode).toBe(1);
      expect(report.backups[0].problems.map((p) => p.file)).toEqual([victim.path]);
      const text = await ws.run(['verify', 'pg', backupId]);
      expect(text.stdout).toContain(`PROBLEM ${victim.path}:`);
      const target = await ws.restoreTarget();
      const restore = await ws.run(['restore', 'pg', backupId, target]);
      expect(restore.exitCode).toBe(1);
      expect(restore.stderr).toContain(victim.path);
    } finally {
      await writeFile(file, original);
    }
  });

  it('a truncated bundle: every file past the cut is named', async () => {
    const files = (await manifestFiles(backupId)).filter((f) => f.bundle === 1).sort((a, b) => a.offset! - b.offset!);
    const cut = files.at(-3)!;
    const file = bundlePath(backupId, 1);
    const original = await readFile(file);
    await truncate(file, cut.offset! + 1);
    try {
      const { exitCode, report } = await verify([backupId]);
      expect(exitCode).toBe(1);
      const named = report.backups[0].problems.map((p) => p.file);
      expect(named).toEqual(expect.arrayContaining(files.slice(-3).map((f) => f.path)));
      expect(named.length).toBe(3);
    } finally {
      await writeFile(file, original);
    }
  });

  it('a missing bundle: its files are named', async () => {
    const file = bundlePath(backupId, 1);
    await rename(file, `${file}.away`);
    try {
      const { exitCode, report } = await verify([backupId]);
      expect(exitCode).toBe(1);
      expect(report.backups[0].problems[0].message).toContain('is missing from the repository');
      expect(report.backups[0].problems.length).toBe((await manifestFiles(backupId)).filter((f) => f.bundle === 1).length);
    } finally {
      await rename(`${file}.away`, file);
    }
  });

  it('a WAL segment missing from the archive after the backup: --wal names it', async () => {
    const gone = segments[1];
    const object = await walObject(gone);
    await rename(object, path.join(ws.dir, 'moved-segment'));
    try {
      const { exitCode, report } = await verify([backupId, '--wal']);
      expect(exitCode).toBe(1);
      expect(report.backups[0].wal!.missing).toEqual([gone]);
      expect(report.backups[0].problems).toEqual([expect.objectContaining({ kind: 'wal', file: gone })]);
      // Without --wal the backup itself is fine.
      expect((await verify([backupId])).exitCode).toBe(0);
    } finally {
      await rename(path.join(ws.dir, 'moved-segment'), object);
    }
  });

  it('a damaged archived WAL segment: --wal names it', async () => {
    const object = await walObject(segments[0]);
    const original = await readFile(object);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 20] ^= 0x01;
    await writeFile(object, damaged);
    try {
      const { exitCode, report } = await verify([backupId, '--wal']);
      expect(exitCode).toBe(1);
      expect(report.backups[0].problems).toEqual([expect.objectContaining({ kind: 'wal', file: segments[0] })]);
    } finally {
      await writeFile(object, original);
    }
  });

  it('unknown backups and servers are clear errors', async () => {
    const result = await ws.run(['verify', 'pg', '20000101T000000']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('does not exist');
  });
});
