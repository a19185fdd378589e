import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harbor, createLogger, decodeFile, fileHasher, readBlockMap, restoreRelationFile, storedRange, type BackupManifest, type Repository } from '@pgharbor/core';
import { createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

/**
 * Issue 17, item 4: each file's digest is recorded with its algorithm
 * (`"blake3:<hex>"`), and entries written before that (a bare `sha256`
 * per file) still restore, delta-restore and verify. They are made from a
 * real backup by replacing each digest with the sha256 of the same bytes,
 * read back through pgharbor's own decoder: for the files stored whole, as
 * every file was then (relation files are block-mapped since format 2 and
 * keep their digest: the manifest mixes both generations, entry by entry).
 */
describe('per-file digests', () => {
  let ws: Workspace;
  let harbor: Harbor;
  let repository: Repository;
  let backupId: string;
  let manifest: BackupManifest;
  let source: Record<string, string>;

  async function storedBytesDigest(file: BackupManifest['files'][number], algorithm: 'blake3' | 'sha256'): Promise<string> {
    if (file.blockMap) {
      // A relation file stored as blocks: restored through its block map into a scratch file, then hashed.
      const scratch = path.join(ws.dir, 'block-mapped-file');
      await restoreRelationFile(repository, file, await readBlockMap(repository, manifest.id, file, new Set([manifest.id])), scratch, false);
      const bytes = await readFile(scratch);
      await rm(scratch);
      if (algorithm === 'sha256') return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const blake = fileHasher('blake3');
      blake.update(bytes);
      return blake.digest();
    }
    const range = storedRange(repository, manifest, file);
    const hash = algorithm === 'sha256' ? createHash('sha256') : undefined;
    const blake = algorithm === 'blake3' ? fileHasher('blake3') : undefined;
    if (range) {
      for await (const chunk of decodeFile(repository, manifest.id, file, await repository.storage.get(range.key, { offset: range.offset, length: range.length }))) {
        hash?.update(chunk);
        blake?.update(chunk);
      }
    }
    return hash ? `sha256:${hash.digest('hex')}` : blake!.digest();
  }

  beforeAll(async () => {
    ws = await createWorkspace({ serverExtra: ['compression: lz4'] });
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    source = await pgbenchChecksums(ws.cluster);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.exitCode).toBe(0);
    backupId = JSON.parse(backup.stdout).id;
    harbor = await Harbor.load({ configFile: ws.configFile, logger: createLogger({ level: 'error' }) });
    repository = await harbor.server('pg').repository();
    manifest = (await repository.readManifest(backupId))!;
  });
  afterAll(async () => {
    await harbor?.close();
    await ws?.cleanup();
  });

  it('records BLAKE3 of the original bytes for every file, and nothing else', async () => {
    const files = manifest.files.filter((f) => f.type === 'file');
    expect(files.length).toBeGreaterThan(100);
    for (const file of files) {
      expect(file.sha256).toBeUndefined();
      expect(file.digest).toMatch(/^blake3:[0-9a-f]{64}$/);
    }
    const whole = files.filter((f) => f.size > 0 && !f.blockMap);
    expect(whole.length).toBeGreaterThan(10);
    for (const file of whole.slice(0, 40)) expect(await storedBytesDigest(file, 'blake3')).toBe(file.digest);
  });

  it('a manifest of the sha256 generation restores, delta-restores and verifies; a wrong sha256 is caught', async () => {
    const legacy: BackupManifest = structuredClone(manifest);
    for (const file of legacy.files) {
      if (file.type !== 'file' || file.blockMap) continue;
      file.sha256 = (await storedBytesDigest(file, 'sha256')).slice('sha256:'.length);
      delete file.digest;
    }
    await repository.writeManifest(legacy);
    try {
      const verify = await ws.run(['verify', 'pg', backupId]);
      expect(verify.stderr).toBe('');
      expect(verify.exitCode).toBe(0);
      const target = await ws.restoreTarget();
      expect((await ws.run(['restore', 'pg', backupId, target])).exitCode).toBe(0);
      const restored = await ws.startRestored(target);
      expect(await pgbenchChecksums(restored)).toEqual(source);
      await restored.query('UPDATE pgbench_branches SET bbalance = bbalance + 1');
      await restored.query('CHECKPOINT');
      await restored.stop();
      const delta = await ws.run(['--json', 'restore', 'pg', backupId, target, '--delta']);
      expect(delta.exitCode).toBe(0);
      expect(JSON.parse(delta.stdout).delta.keptFiles).toBeGreaterThan(100); // kept by their sha256
      const again = await ws.startRestored(target);
      expect(await pgbenchChecksums(again)).toEqual(source);
      await again.stop();

      // One flipped digit in one big file's sha256: verify and restore name it.
      const victim = legacy.files.filter((f) => f.type === 'file' && f.sha256).sort((a, b) => b.size - a.size)[0];
      victim.sha256 = victim.sha256!.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await repository.writeManifest(legacy);
      const bad = await ws.run(['verify', 'pg', backupId]);
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout + bad.stderr).toContain(`${victim.path} does not match its checksum (expected sha256:${victim.sha256}`);
      const refused = await ws.run(['restore', 'pg', backupId, await ws.restoreTarget()]);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain(`file ${victim.path} does not match its checksum`);
    } finally {
      await repository.writeManifest(manifest);
    }
  });

  it('a manifest entry recording both a digest and a sha256 is refused before anything is written', async () => {
    const both: BackupManifest = structuredClone(manifest);
    const victim = both.files.find((f) => f.type === 'file' && f.size > 0 && !f.blockMap)!;
    victim.sha256 = 'a'.repeat(64);
    await repository.writeManifest(both);
    try {
      const result = await ws.run(['restore', 'pg', backupId, await ws.restoreTarget()]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`entry "${victim.path}": it records both digest and sha256`);
    } finally {
      await repository.writeManifest(manifest);
    }
  });
});
