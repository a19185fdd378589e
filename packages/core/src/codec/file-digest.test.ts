import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkDigest, digestAlgorithmOf, digestOfLocalFile, emptyDigest, fileDigestProblem, fileHasher, matchesRecorded, recordedDigest, WRITTEN_FILE_DIGEST } from './file-digest.js';

describe('file digests', () => {
  it('BLAKE3 and sha256 give the published digests, prefixed by their algorithm', () => {
    // BLAKE3 test vectors of the reference implementation.
    expect(emptyDigest('blake3')).toBe('blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    const abc = fileHasher('blake3');
    abc.update(Buffer.from('abc'));
    expect(abc.digest()).toBe('blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
    expect(emptyDigest('sha256')).toBe(`sha256:${createHash('sha256').digest('hex')}`);
  });

  it('new backups record BLAKE3', () => {
    expect(WRITTEN_FILE_DIGEST).toBe('blake3');
  });

  it('hashes views of a larger buffer by their own bytes, however the chunks fall', () => {
    const data = randomBytes(300_000);
    const whole = fileHasher('blake3');
    whole.update(Buffer.from(data.subarray(1000, 250_000)));
    const pieces = fileHasher('blake3');
    for (let at = 1000; at < 250_000; at += 7777) pieces.update(data.subarray(at, Math.min(at + 7777, 250_000)));
    expect(pieces.digest()).toBe(whole.digest());
  });

  it('reads entries of both generations', () => {
    const hex = 'b'.repeat(64);
    expect(recordedDigest({ digest: `blake3:${hex}` })).toBe(`blake3:${hex}`);
    expect(recordedDigest({ sha256: hex })).toBe(`sha256:${hex}`);
    expect(recordedDigest({})).toBeUndefined();
    expect(digestAlgorithmOf({ sha256: hex })).toBe('sha256');
    expect(digestAlgorithmOf({ digest: `blake3:${hex}` })).toBe('blake3');
    expect(matchesRecorded({ sha256: hex }, `sha256:${hex}`)).toBe(true);
    // Same hex under another algorithm is another digest.
    expect(matchesRecorded({ sha256: hex }, `blake3:${hex}`)).toBe(false);
    expect(matchesRecorded({}, `blake3:${hex}`)).toBe(false);
  });

  it.each([
    [`blake3:${'0'.repeat(64)}`, undefined],
    [`sha256:${'f'.repeat(64)}`, undefined],
    [`xxh3:${'0'.repeat(32)}`, 'digest algorithm "xxh3" is not one pgharbor knows (blake3, sha256, blake3-blocks)'],
    [`constructor:${'0'.repeat(64)}`, 'digest algorithm "constructor" is not one pgharbor knows (blake3, sha256, blake3-blocks)'],
    [`:${'0'.repeat(64)}`, 'digest algorithm "" is not one pgharbor knows (blake3, sha256, blake3-blocks)'],
    [`blake3:${'0'.repeat(62)}`, 'blake3 digest is not 64 lower-case hex digits'],
    [`blake3:${'0'.repeat(63)}g`, 'blake3 digest is not 64 lower-case hex digits'],
    [`blake3:${'0'.repeat(64)}\n`, 'blake3 digest is not 64 lower-case hex digits'],
    [null, 'digest is not a string'],
  ])('validates %j', (value, problem) => {
    expect(fileDigestProblem(value)).toBe(problem);
  });

  it('a mismatch names the file and both digests', () => {
    const expected = `blake3:${'1'.repeat(64)}`;
    expect(() => checkDigest({ path: 'base/1/2', digest: expected }, `blake3:${'2'.repeat(64)}`)).toThrow(`file base/1/2 does not match its checksum (expected ${expected}, got blake3:${'2'.repeat(64)})`);
    expect(() => checkDigest({ path: 'base/1/2', digest: expected }, expected)).not.toThrow();
  });

  describe('of a local file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-digest-'));
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it('is the digest of its bytes, read in more than one piece, in the algorithm asked for', async () => {
      const data = randomBytes(2 * 1024 * 1024 + 17);
      const file = path.join(dir, 'f');
      await writeFile(file, data);
      let counted = 0;
      for (const algorithm of ['blake3', 'sha256'] as const) {
        const hash = fileHasher(algorithm);
        hash.update(data);
        expect(await digestOfLocalFile(file, algorithm, (bytes) => (counted += bytes))).toBe(hash.digest());
      }
      expect(counted).toBe(2 * data.length);
    });
  });
});

describe('blake3-blocks', () => {
  it('is the same from the bytes, in any chunking, as from the block digests', async () => {
    const { blockDigest } = await import('../blocks/block-digest.js');
    const { blockListDigest } = await import('./file-digest.js');
    const bytes = Buffer.alloc(3 * 8192 + 100);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    const fromBlocks = blockListDigest([0, 1, 2, 3].map((i) => blockDigest(bytes.subarray(i * 8192, (i + 1) * 8192))));
    for (const chunk of [1, 1000, 8192, 10_000, bytes.length]) {
      const hash = fileHasher('blake3-blocks');
      for (let at = 0; at < bytes.length; at += chunk) hash.update(bytes.subarray(at, at + chunk));
      expect(hash.digest()).toBe(fromBlocks);
    }
    expect(fromBlocks).toMatch(/^blake3-blocks:[0-9a-f]{64}$/);
    expect(fileDigestProblem(fromBlocks)).toBeUndefined();
    const other = Buffer.from(bytes);
    other[8192 * 2 + 5] ^= 1;
    const hash = fileHasher('blake3-blocks');
    hash.update(other);
    expect(hash.digest()).not.toBe(fromBlocks);
  });
});
