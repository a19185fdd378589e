import { readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createWorkspace, pgbenchChecksums, switchAndWaitArchived, type Workspace } from './harness.js';

interface StoredFileEntry {
  path: string;
  type: string;
  size: number;
  storedSize?: number;
  bundle?: number;
  offset?: number;
  compression: string;
  encryption: string;
}

/** Rewrite the workspace config with these repository settings (YAML flow mapping body). */
async function setRepository(ws: Workspace, settings: string): Promise<void> {
  const text = await readFile(ws.configFile, 'utf8');
  await writeFile(ws.configFile, text.replace(/- \{ type: posix, path: \.\/repo[^}]*\}/, `- { type: posix, path: ./repo${settings ? `, ${settings}` : ''} }`));
}

async function readManifest(ws: Workspace, id: string): Promise<{ size: number; storedSize: number; files: StoredFileEntry[] }> {
  return JSON.parse(await readFile(path.join(ws.repoDir, 'pg', 'backups', id, 'manifest.json'), 'utf8'));
}

async function walObjects(ws: Workspace): Promise<string[]> {
  const root = path.join(ws.repoDir, 'pg', 'wal');
  const dirs = await readdir(root);
  return (await Promise.all(dirs.map(async (d) => readdir(path.join(root, d))))).flat();
}

/**
 * Every algorithm, in one repository and one WAL archive: a policy change
 * takes effect at the next backup or segment, and everything written under
 * any earlier setting still restores.
 */
describe('compression: none, gzip, lz4, zstd in one repository', () => {
  let ws: Workspace;
  let source: Record<string, string>;
  const backups: Record<string, string> = {};

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
    await ws.cluster.pgbench(['-i', '-s', '2', '-q', 'postgres']);
    await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
    source = await pgbenchChecksums(ws.cluster);
    for (const [algorithm, settings] of [
      ['none', 'compression: none'],
      ['gzip', 'compression: gzip, compression_level: 1'],
      ['lz4', 'compression: lz4'],
      ['zstd', ''], // the default: zstd level 1
    ] as const) {
      await setRepository(ws, settings);
      const backup = await ws.run(['--json', 'backup', 'pg']);
      expect(backup.stderr).not.toMatch(/ERROR/);
      expect(backup.exitCode).toBe(0);
      backups[algorithm] = JSON.parse(backup.stdout).id;
      await switchAndWaitArchived(ws.cluster);
    }
  });
  afterAll(async () => ws?.cleanup());

  it('records the algorithm and stored size per file; compressed backups are several times smaller', async () => {
    const sizes: Record<string, number> = {};
    for (const [algorithm, id] of Object.entries(backups)) {
      const manifest = await readManifest(ws, id);
      const files = manifest.files.filter((f) => f.type === 'file' && f.size > 0);
      expect(new Set(files.map((f) => f.compression))).toEqual(new Set([algorithm]));
      expect(files.every((f) => f.encryption === 'none')).toBe(true);
      const stored = files.reduce((sum, f) => sum + f.storedSize!, 0);
      expect(stored).toBe(manifest.storedSize);
      sizes[algorithm] = manifest.size / manifest.storedSize;
    }
    // Stored as they are, plus each relation file's block map (22 bytes per 8 KiB block: docs/repository-format.md).
    expect(sizes.none).toBeLessThanOrEqual(1);
    expect(sizes.none).toBeGreaterThan(0.99);
    // pgbench data compresses well (scale 2 here: blank filler columns).
    for (const algorithm of ['gzip', 'lz4', 'zstd']) expect(sizes[algorithm], algorithm).toBeGreaterThan(3);
    console.log('compression ratios (original / stored):', Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, v.toFixed(2)])));
  });

  it('WAL objects carry the suffix of the setting they were written under', async () => {
    const names = await walObjects(ws);
    const segments = names.filter((n) => /^[0-9A-F]{24}-/.test(n));
    for (const suffix of ['', '.gz', '.zst', '.lz4']) {
      expect(segments.some((n) => new RegExp(`^[0-9A-F]{24}-[0-9a-f]{64}${suffix.replace('.', '\\.')}$`).test(n)), `suffix "${suffix}"`).toBe(true);
    }
  });

  it('stored frames are standard: zstd, lz4 and gzip read a file straight out of a bundle', async () => {
    for (const [algorithm, tool] of [
      ['zstd', 'zstd'],
      ['lz4', 'lz4'],
      ['gzip', 'gzip'],
    ] as const) {
      if (!existsSync(`/usr/bin/${tool}`)) continue;
      const manifest = await readManifest(ws, backups[algorithm]);
      const file = manifest.files.find((f) => f.path === 'PG_VERSION')!;
      const bundle = await readFile(path.join(ws.repoDir, 'pg', 'backups', backups[algorithm], `bundle-${String(file.bundle).padStart(6, '0')}.dat`));
      const stored = bundle.subarray(file.offset!, file.offset! + file.storedSize!);
      const { stdout } = await execa(tool, ['-d', '-c'], { input: stored, encoding: 'utf8' });
      expect(stdout.trim()).toBe('15');
    }
  });

  it('every backup restores, WAL of every setting replays, and the data is identical', async () => {
    for (const algorithm of ['gzip', 'lz4', 'zstd', 'none']) {
      const target = await ws.restoreTarget(`restore-${algorithm}`);
      const restore = await ws.run(['restore', 'pg', backups[algorithm], target]);
      expect(restore.stderr).not.toMatch(/ERROR/);
      expect(restore.exitCode).toBe(0);
      // gzip's backup is the oldest: recovery replays WAL archived under all four settings.
      const restored = await ws.startRestored(target);
      expect(await pgbenchChecksums(restored), algorithm).toEqual(source);
      await restored.stop();
    }
  });

  it('a damaged compressed file stops the restore, naming it', async () => {
    const id = backups.zstd;
    const manifest = await readManifest(ws, id);
    const victim = manifest.files.filter((f) => f.type === 'file' && f.path.startsWith('base/')).sort((a, b) => b.storedSize! - a.storedSize!)[0];
    const bundlePath = path.join(ws.repoDir, 'pg', 'backups', id, `bundle-${String(victim.bundle).padStart(6, '0')}.dat`);
    const original = await readFile(bundlePath);
    const damaged = Buffer.from(original);
    damaged[victim.offset! + Math.floor(victim.storedSize! / 2)] ^= 0x55;
    await writeFile(bundlePath, damaged);
    try {
      const target = await ws.restoreTarget();
      const restore = await ws.run(['restore', 'pg', id, target]);
      expect(restore.exitCode).toBe(1);
      // Block-mapped (a relation file): where the flipped byte lands decides which check stops it first, the frame's decoder or a digest.
      const named = `file ${victim.path}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      expect(restore.stderr).toMatch(new RegExp(`${named}( does not match its checksum|: block \\d+ .* does not match its digest|: its super block .* cannot be decoded)`));
      expect(restore.stderr).toMatch(/HINT: .*incomplete/);
      expect(existsSync(path.join(target, 'global', 'pg_control'))).toBe(false);
    } finally {
      await writeFile(bundlePath, original);
    }
  });

  it('bad settings are refused before anything runs', async () => {
    await setRepository(ws, 'compression: brotli');
    let result = await ws.run(['backup', 'pg']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('repositories[0].compression');
    await setRepository(ws, 'compression: gzip, compression_level: 12');
    result = await ws.run(['backup', 'pg']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/compression_level/);
    await setRepository(ws, 'compression: lz4, compression_level: 3');
    result = await ws.run(['backup', 'pg']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('lz4 has no compression levels');
    await setRepository(ws, '');
  });
});
