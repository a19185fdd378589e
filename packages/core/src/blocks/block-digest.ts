import { createHash } from 'node:crypto';

/**
 * The digest that decides whether a block changed since the parent
 * backup. Identity is decided by it and a database user controls page
 * contents, so it must be collision-resistant: sha256, truncated to 128
 * bits (2^64 work to forge a collision). Each block map records the
 * algorithm it was written with (block-map.ts), so a faster one can be
 * swapped in here without making older maps unreadable.
 */
export const BLOCK_DIGEST_ALGORITHM = 'sha256-128';
export const BLOCK_DIGEST_BYTES = 16;

/** Algorithms a block map may name, and how to compute each. */
const ALGORITHMS: Record<string, (block: Buffer) => Buffer> = {
  'sha256-128': (block) => createHash('sha256').update(block).digest().subarray(0, BLOCK_DIGEST_BYTES),
};

export function isBlockDigestAlgorithm(name: string): boolean {
  return Object.hasOwn(ALGORITHMS, name);
}

/** The digest of one block with `algorithm` (default: the one new maps use). */
export function blockDigest(block: Buffer, algorithm = BLOCK_DIGEST_ALGORITHM): Buffer {
  return ALGORITHMS[algorithm](block);
}
