import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { HarborError } from '../errors.js';
import { blockDigest } from '../blocks/block-digest.js';

/** PostgreSQL's block size, the unit of `blake3-blocks` (blocks/relation-file.ts's BLOCK_SIZE). */
const BLOCK_BYTES = 8192;

/**
 * The digest of a file's original bytes, as the manifest records it:
 * `"<algorithm>:<hex>"`, one algorithm per file, so that the choice can
 * change without making older backups unreadable.
 *
 * Written today: BLAKE3 (256-bit). It is a cryptographic hash, so it may
 * decide identity (a file reused from an earlier backup by its digest; a
 * database user controls the bytes and could otherwise forge a collision),
 * and on this project's machines it runs at ~5.5 GB/s on one core against
 * sha256's ~1.75 GB/s with SHA-NI (docs/repository-format.md, "File
 * digests", has the figures). Manifests written before carry `sha256`
 * (hex only), read here as `sha256:<hex>`.
 */
export type FileDigestAlgorithm = 'blake3' | 'sha256' | 'blake3-blocks';

/** Hex digits of each known algorithm's digest: anything else in a manifest is refused. */
const HEX_LENGTH: Record<FileDigestAlgorithm, number> = { blake3: 64, sha256: 64, 'blake3-blocks': 64 };

export function isFileDigestAlgorithm(name: unknown): name is FileDigestAlgorithm {
  return typeof name === 'string' && Object.hasOwn(HEX_LENGTH, name);
}

/**
 * The algorithm new backups record. `PGHARBOR_FILE_DIGEST` (blake3 or sha256)
 * overrides it: bench/ uses it to measure both in the real backup and
 * restore paths; the manifest says which was used, so either restores.
 */
export const WRITTEN_FILE_DIGEST: FileDigestAlgorithm = writtenAlgorithm();

function writtenAlgorithm(): FileDigestAlgorithm {
  const chosen = process.env.PGHARBOR_FILE_DIGEST;
  if (chosen === undefined || chosen === '') return 'blake3';
  if (!isFileDigestAlgorithm(chosen) || chosen === 'blake3-blocks') {
    throw new HarborError(`PGHARBOR_FILE_DIGEST=${JSON.stringify(chosen)} is not a known file digest`, { hint: `use one of ${Object.keys(HEX_LENGTH).join(', ')}, or unset it` });
  }
  return chosen;
}

/** A running digest: feed chunks, then `digest()` gives `"<algorithm>:<hex>"`. */
export interface FileHasher {
  readonly algorithm: FileDigestAlgorithm;
  update(chunk: Uint8Array): void;
  digest(): string;
}

type Blake3Hasher = { update(input: Uint8Array): unknown; digest(format?: string): string };
let Blake3: (new () => Blake3Hasher) | undefined;

export function fileHasher(algorithm: FileDigestAlgorithm = WRITTEN_FILE_DIGEST): FileHasher {
  if (algorithm === 'blake3-blocks') return blockListHasher();
  if (algorithm === 'sha256') {
    const hash = createHash('sha256');
    return { algorithm, update: (chunk) => void hash.update(chunk), digest: () => `sha256:${hash.digest('hex')}` };
  }
  Blake3 ??= loadBlake3();
  const hash = new Blake3();
  return { algorithm, update: (chunk) => void hash.update(chunk), digest: () => `blake3:${hash.digest('hex')}` };
}

/**
 * `blake3-blocks`: BLAKE3 of the list of the file's 8 KiB block digests
 * (BLAKE3-128 each, the last block as short as it is), so that it can be
 * computed both from the bytes and from a block map alone. Recorded for a
 * relation file whose bytes pgharbor never held whole: one built from a
 * PostgreSQL 17+ incremental file (INCREMENTAL.*) and its parent's map.
 * Its strength is the block digests' (128 bits, docs/repository-format.md).
 */
function blockListHasher(): FileHasher {
  Blake3 ??= loadBlake3();
  const outer = new Blake3();
  const block = Buffer.allocUnsafe(BLOCK_BYTES);
  let filled = 0;
  return {
    algorithm: 'blake3-blocks',
    update(chunk) {
      let at = 0;
      while (at < chunk.length) {
        const n = Math.min(BLOCK_BYTES - filled, chunk.length - at);
        block.set(chunk.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === BLOCK_BYTES) {
          outer.update(blockDigest(block));
          filled = 0;
        }
      }
    },
    digest() {
      if (filled > 0) outer.update(blockDigest(block.subarray(0, filled)));
      filled = 0;
      return `blake3-blocks:${outer.digest('hex')}`;
    },
  };
}

/** `blake3-blocks` of a file from its blocks' BLAKE3-128 digests, in file order (a block map's). */
export function blockListDigest(digests: Iterable<Uint8Array>): string {
  Blake3 ??= loadBlake3();
  const outer = new Blake3();
  for (const digest of digests) outer.update(digest);
  return `blake3-blocks:${outer.digest('hex')}`;
}

/**
 * @napi-rs/blake-hash (the `blake3` crate, native, its binary inside the npm
 * package). Loaded when first used: archive-push never needs it. On linux
 * x64 with glibc the binary package is required directly (the index.js
 * probes the platform by reading files, a few ms per process).
 */
function loadBlake3(): new () => Blake3Hasher {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux' && process.arch === 'x64' && !existsSync('/lib/ld-musl-x86_64.so.1')) {
    try {
      return (require('@napi-rs/blake-hash-linux-x64-gnu') as { Blake3Hasher: new () => Blake3Hasher }).Blake3Hasher;
    } catch {
      // fall through to the package's own loader
    }
  }
  return (require('@napi-rs/blake-hash') as { Blake3Hasher: new () => Blake3Hasher }).Blake3Hasher;
}

/** What a manifest file entry records about its bytes (`digest`, or `sha256` from before per-file algorithms). */
export interface DigestedEntry {
  digest?: string;
  sha256?: string;
}

/** The entry's recorded digest as `"<algorithm>:<hex>"`, or undefined when it records none. */
export function recordedDigest(file: DigestedEntry): string | undefined {
  if (file.digest !== undefined) return file.digest;
  return file.sha256 !== undefined ? `sha256:${file.sha256}` : undefined;
}

/** The algorithm to check the entry's bytes with (the one it records; the written one when it records none). */
export function digestAlgorithmOf(file: DigestedEntry): FileDigestAlgorithm {
  const recorded = recordedDigest(file);
  const name = recorded?.slice(0, recorded.indexOf(':'));
  return isFileDigestAlgorithm(name) ? name : WRITTEN_FILE_DIGEST;
}

/** Why `value` is not a valid recorded digest (known algorithm, exactly its hex length, lower case), or undefined. */
export function fileDigestProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'digest is not a string';
  const colon = value.indexOf(':');
  const name = colon > 0 ? value.slice(0, colon) : '';
  if (!isFileDigestAlgorithm(name)) return `digest algorithm ${JSON.stringify(value.slice(0, Math.max(colon, 0)).slice(0, 32))} is not one pgharbor knows (${Object.keys(HEX_LENGTH).join(', ')})`;
  const hex = value.slice(colon + 1);
  if (hex.length !== HEX_LENGTH[name] || !/^[0-9a-f]*$/.test(hex)) return `${name} digest is not ${HEX_LENGTH[name]} lower-case hex digits`;
  return undefined;
}

/** The digest of no bytes at all, in `algorithm`. */
export function emptyDigest(algorithm: FileDigestAlgorithm): string {
  return fileHasher(algorithm).digest();
}

/** Same bytes as the entry records, judged by its own algorithm (`actual` must be in that algorithm). */
export function matchesRecorded(file: DigestedEntry, actual: string): boolean {
  const recorded = recordedDigest(file);
  return recorded !== undefined && recorded === actual;
}

/** A restored file's bytes against its manifest entry: a mismatch stops the restore, naming the file. */
export function checkDigest(file: DigestedEntry & { path: string }, actual: string): void {
  const recorded = recordedDigest(file);
  if (recorded !== undefined && actual !== recorded) {
    throw new HarborError(`file ${file.path} does not match its checksum (expected ${recorded}, got ${actual})`, {
      hint: 'the repository copy is damaged; restore an older backup',
    });
  }
}

/** Bytes per read: two reused buffers, one hashed while the other fills. */
const CHUNK = 1024 * 1024;

/**
 * The digest of a local file, read through two reused buffers (no buffer
 * allocated per read: a stream's fresh 1 MiB chunks cost page faults and
 * garbage collections over gigabytes). `onBytes` counts what was read.
 */
export async function digestOfLocalFile(file: string, algorithm: FileDigestAlgorithm, onBytes?: (bytes: number) => void): Promise<string> {
  const hash = fileHasher(algorithm);
  const handle = await fs.open(file, 'r');
  let next: Promise<{ bytesRead: number }> | undefined;
  try {
    const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    const readAt = (index: number, position: number) => {
      const read = handle.read(buffers[index % 2], 0, CHUNK, position);
      read.catch(() => {}); // in flight while this chunk is hashed; its failure surfaces where it is awaited
      return read;
    };
    let position = 0;
    next = readAt(0, 0);
    for (let index = 0; ; index++) {
      const { bytesRead } = await next;
      if (bytesRead === 0) break;
      const chunk = buffers[index % 2].subarray(0, bytesRead);
      position += bytesRead;
      next = readAt(index + 1, position); // the next read runs while this one is hashed
      hash.update(chunk);
      onBytes?.(bytesRead);
    }
    return hash.digest();
  } finally {
    await next?.catch(() => {}); // never close the handle under a read
    await handle.close();
  }
}
