import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { HarborError, errorMessage } from '../errors.js';
import type { CompressionAlgorithm } from './codec-settings.js';
import { decodeLz4Frame } from './lz4-decode.js';
import { encodeLz4Frame } from './lz4-frame.js';

/**
 * The compression libraries, loaded on first use only (the WAL hot path
 * of an uncompressed repository never loads them):
 *
 * - gzip: Node's zlib (each block one gzip member; `gunzip` reads the
 *   concatenation).
 * - lz4: `lz4-napi` (lz4_flex, prebuilt N-API binaries in the npm
 *   registry): LZ4 frames, readable by the `lz4` command-line tool, made
 *   of its compressed blocks by lz4-frame.ts (see there why not by its
 *   frame encoder). Decompressed by lz4-decode.ts (see there why not by
 *   lz4-napi).
 * - zstd: `@mongodb-js/zstd` 1.x (libzstd via napi-rs, prebuilt binaries
 *   in the npm registry): zstd frames, readable by the `zstd` tool. Its
 *   index.js drops the level argument, so the napi binding is called
 *   directly (version pinned).
 *
 * All three run on libuv's thread pool (async N-API tasks / zlib's async
 * API), so several blocks compress in parallel while the main thread
 * hashes and writes: no worker threads needed.
 */
export interface BlockCompressor {
  readonly algorithm: Exclude<CompressionAlgorithm, 'none'>;
  compress(block: Buffer, level: number | undefined): Promise<Buffer>;
  /** Decompress one complete frame (lz4, zstd) or gzip member(s). */
  decompress(frame: Buffer): Promise<Buffer>;
  /** The same, where it runs on the calling thread anyway (lz4): no frames need queueing ahead. */
  decompressSync?(frame: Buffer): Buffer;
}

const loaded = new Map<string, Promise<BlockCompressor>>();
const require = createRequire(import.meta.url);

export function loadCompressor(algorithm: Exclude<CompressionAlgorithm, 'none'>): Promise<BlockCompressor> {
  let compressor = loaded.get(algorithm);
  if (!compressor) {
    compressor = load(algorithm).catch((error) => {
      loaded.delete(algorithm);
      throw new HarborError(`cannot load the ${algorithm} library: ${errorMessage(error)}`, {
        hint: `reinstall pgharbor's dependencies (npm ci); ${algorithm === 'lz4' ? 'lz4-napi' : '@mongodb-js/zstd'} ships prebuilt binaries for linux x64/arm64, macOS and Windows`,
      });
    });
    loaded.set(algorithm, compressor);
  }
  return compressor;
}

async function load(algorithm: Exclude<CompressionAlgorithm, 'none'>): Promise<BlockCompressor> {
  if (algorithm === 'gzip') {
    const zlib = await import('node:zlib');
    const { promisify } = await import('node:util');
    const gzip = promisify(zlib.gzip);
    const gunzip = promisify(zlib.gunzip);
    return { algorithm, compress: (block, level) => gzip(block, { level: level ?? 6 }), decompress: (frame) => gunzip(frame) };
  }
  if (algorithm === 'lz4') {
    // lz4-napi allocates its outputs with its own mimalloc, freed only when V8
    // collects the Buffers; mimalloc keeps freed pages resident for its purge
    // delay (10 ms by default). At 3 ms a 1.5 GB backup peaked ~15 MB lower at
    // the same speed; at 0 (purge on every free) ~35 MB lower but with ~1 s more
    // system time (madvise and re-faults). mimalloc reads its options from the
    // environment when the addon loads; a value the operator set wins (commands
    // started later inherit it: only mimalloc reads it).
    process.env.MIMALLOC_PURGE_DELAY ??= '3';
    const lz4 = requireLz4();
    return { algorithm, compress: (block) => encodeLz4Frame(block, (part) => lz4.compress(part)), decompress: async (frame) => decodeLz4Frame(frame), decompressSync: decodeLz4Frame };
  }
  const zstd = require('@mongodb-js/zstd/bindings.js') as { compress(data: Buffer, level?: number): Promise<Buffer>; decompress(data: Buffer): Promise<Buffer> };
  return { algorithm, compress: (block, level) => zstd.compress(block, level ?? 1), decompress: (frame) => zstd.decompress(frame) };
}

/**
 * lz4-napi's index.js finds its binary by probing the platform (it reads
 * /usr/bin/ldd to tell glibc from musl): a few ms of every compressed
 * archive-push. On linux x64 without musl's loader, the binary package it
 * would pick is loaded directly; anything unexpected goes through index.js.
 */
function requireLz4(): typeof import('lz4-napi') {
  if (process.platform === 'linux' && process.arch === 'x64' && !existsSync('/lib/ld-musl-x86_64.so.1')) {
    try {
      return require('@antoniomuso/lz4-napi-linux-x64-gnu') as typeof import('lz4-napi');
    } catch {
      // not installed where we can see it: the package's own loader knows where to look
    }
  }
  return require('lz4-napi') as typeof import('lz4-napi');
}
