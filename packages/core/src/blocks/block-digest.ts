import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * The digest that decides whether a block changed since the parent
 * backup. Identity is decided by it and a database user controls page
 * contents, so it must be collision-resistant: BLAKE3 or sha256, truncated
 * to 128 bits (2^64 work to forge a collision). Each block map records the
 * algorithm it was written with (block-map.ts), so maps of either kind
 * read, and a block compares only with a digest of its own algorithm.
 *
 * Written: BLAKE3. Per 8 KiB block (a call each), measured here under load
 * (a loop over 200 MiB of blocks): sha256 0.35-0.58 GB/s, the
 * one-shot blake3() of @napi-rs/blake-hash 0.74-1.0 GB/s.
 */
export const BLOCK_DIGEST_ALGORITHM = 'blake3-128';
export const BLOCK_DIGEST_BYTES = 16;

let blake3: ((input: Uint8Array) => Buffer) | undefined;

/** Algorithms a block map may name, and how to compute each. */
const ALGORITHMS: Record<string, (block: Buffer) => Buffer> = {
  'sha256-128': (block) => createHash('sha256').update(block).digest().subarray(0, BLOCK_DIGEST_BYTES),
  'blake3-128': (block) => (blake3 ??= loadBlake3())(block).subarray(0, BLOCK_DIGEST_BYTES),
};

export function isBlockDigestAlgorithm(name: string): boolean {
  return Object.hasOwn(ALGORITHMS, name);
}

/** The digest of one block with `algorithm` (default: the one new maps use). */
export function blockDigest(block: Buffer, algorithm = BLOCK_DIGEST_ALGORITHM): Buffer {
  return ALGORITHMS[algorithm](block);
}

/** @napi-rs/blake-hash's one-shot blake3() (the binary package directly on linux x64 glibc, as codec/file-digest.ts loads it). */
function loadBlake3(): (input: Uint8Array) => Buffer {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux' && process.arch === 'x64' && !existsSync('/lib/ld-musl-x86_64.so.1')) {
    try {
      return (require('@napi-rs/blake-hash-linux-x64-gnu') as { blake3: (input: Uint8Array) => Buffer }).blake3;
    } catch {
      // fall through to the package's own loader
    }
  }
  return (require('@napi-rs/blake-hash') as { blake3: (input: Uint8Array) => Buffer }).blake3;
}
