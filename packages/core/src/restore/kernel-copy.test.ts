import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ManifestFile } from '../repository/manifest.js';
import { fileHasher } from '../codec/file-digest.js';
import { copyStoredFile } from './kernel-copy.js';

function digestOf(content: Buffer, algorithm: 'blake3' | 'sha256' = 'blake3'): string {
  const hash = fileHasher(algorithm);
  hash.update(content);
  return hash.digest();
}

describe('restoring a file alone in its stored object by a kernel copy', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-kcopy-'));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const content = randomBytes(3 * 1024 * 1024 + 123); // more than two hash reads
  const source = path.join(dir, 'bundle-1');
  await writeFile(source, content, { mode: 0o600 });
  const file = (over: Partial<ManifestFile> = {}): ManifestFile => ({
    path: 'base/5/16396',
    type: 'file',
    size: content.length,
    mode: 0o640,
    mtime: 1_700_000_000,
    digest: digestOf(content),
    compression: 'none',
    encryption: 'none',
    ...over,
  });

  it('copies, checks the checksum, sets mode and mtime', async () => {
    const target = path.join(dir, 'ok');
    expect(await copyStoredFile(source, target, file())).toBe(true);
    expect((await readFile(target)).equals(content)).toBe(true);
    const info = await stat(target);
    expect(info.mode & 0o777).toBe(0o640);
    expect(Math.round(info.mtimeMs / 1000)).toBe(1_700_000_000);
  });

  it('checks an entry written before per-file digests by its sha256', async () => {
    const target = path.join(dir, 'legacy');
    expect(await copyStoredFile(source, target, file({ digest: undefined, sha256: digestOf(content, 'sha256').slice('sha256:'.length) }))).toBe(true);
    expect((await readFile(target)).equals(content)).toBe(true);
    await expect(copyStoredFile(source, path.join(dir, 'legacy-bad'), file({ digest: undefined, sha256: '0'.repeat(64) }))).rejects.toThrow(/expected sha256:0{64}/);
  });

  it('a stored object that does not match the checksum stops it, naming the file', async () => {
    await expect(copyStoredFile(source, path.join(dir, 'bad'), file({ digest: `blake3:${'0'.repeat(64)}` }))).rejects.toThrow(/base\/5\/16396 does not match its checksum/);
  });

  it('an object that is not exactly the file is left to the ordinary path, and nothing is written', async () => {
    expect(await copyStoredFile(source, path.join(dir, 'short'), file({ size: content.length - 1 }))).toBe(false);
    await expect(stat(path.join(dir, 'short'))).rejects.toThrow(/ENOENT/);
    expect(await copyStoredFile(path.join(dir, 'missing'), path.join(dir, 'none'), file())).toBe(false);
  });

  it('never writes over a file that is already there', async () => {
    const target = path.join(dir, 'existing');
    await writeFile(target, 'keep');
    await expect(copyStoredFile(source, target, file())).rejects.toThrow(/EEXIST/);
    expect(await readFile(target, 'utf8')).toBe('keep');
  });
});
