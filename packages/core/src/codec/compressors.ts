import { createRequire } from 'node:module';
import { HarborError, errorMessage } from '../errors.js';
import type { CompressionAlgorithm } from './codec-settings.js';
import { decodeLz4Frame } from './lz4-decode.js';
import { decodeZstdFrame } from './zstd-decode.js';
import { DecodeBoundError } from './decode-bounds.js';

/**
 * The compression libraries, loaded on first use only (the WAL hot path
 * of an uncompressed repository never loads them):
 *
 * - gzip: Node's zlib (each block one gzip member; `gunzip` reads the
 *   concatenation).
 * - lz4: `lz4-wasm-nodejs` (lz4_flex built for WebAssembly: nothing
 *   native to install): LZ4 frames, readable by the `lz4` command-line
 *   tool, written by lz4-frame.ts (see there why not a native addon for
 *   long streams), on worker threads from three cores on (lz4-workers.ts; on two, the
 *   calling thread, which mostly waits for the stream, is faster); the first 32 MiB of
 *   a stream, and every WAL segment archive-push stores, through lz4-napi on
 *   libuv's thread pool (lz4-native.ts). Decompressed by lz4-decode.ts.
 * - zstd: `@mongodb-js/zstd` 1.x (libzstd via napi-rs, prebuilt binaries
 *   in the npm registry): zstd frames, readable by the `zstd` tool. Its
 *   index.js drops the level argument, so the napi binding is called
 *   directly (version pinned).
 *
 * gzip and zstd run on libuv's thread pool (zlib's async API, async N-API
 * tasks) and lz4 on worker threads, so several blocks compress in parallel
 * while the main thread hashes and writes.
 */
export interface BlockCompressor {
  readonly algorithm: Exclude<CompressionAlgorithm, 'none'>;
  /** `long`: a block of a long stream (a backup), not a WAL segment (lz4: see lz4-workers.ts). */
  compress(block: Buffer, level: number | undefined, long?: boolean): Promise<Buffer>;
  /**
   * Decompress one complete frame (lz4, zstd) or gzip member(s), to at
   * most `limit` bytes: past it, fails without holding more than about
   * that much (decode-bounds.ts).
   */
  decompress(frame: Buffer, limit: number): Promise<Buffer>;
  /** The same, where it runs on the calling thread anyway (lz4): no frames need queueing ahead. */
  decompressSync?(frame: Buffer, limit: number): Buffer;
  /** A buffer to collect a block in that `compress` takes without copying (lz4: memory shared with its workers). */
  newFrame?(size: number): Buffer;
}

const loaded = new Map<string, Promise<BlockCompressor>>();
const require = createRequire(import.meta.url);

export function loadCompressor(algorithm: Exclude<CompressionAlgorithm, 'none'>): Promise<BlockCompressor> {
  let compressor = loaded.get(algorithm);
  if (!compressor) {
    compressor = load(algorithm).catch((error) => {
      loaded.delete(algorithm);
      throw new HarborError(`cannot load the ${algorithm} library: ${errorMessage(error)}`, {
        hint: `reinstall pgharbor's dependencies (npm ci); ${algorithm === 'lz4' ? 'lz4-wasm-nodejs is WebAssembly, nothing to build' : '@mongodb-js/zstd ships prebuilt binaries for linux x64/arm64, macOS and Windows'}`,
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
    const decompress = (frame: Buffer, limit: number) =>
      gunzip(frame, { maxOutputLength: limit }).catch((error: NodeJS.ErrnoException) => {
        throw error.code === 'ERR_BUFFER_TOO_LARGE' ? new DecodeBoundError(`has gzip data that decodes to more than ${limit} bytes`) : error;
      });
    return { algorithm, compress: (block, level) => gzip(block, { level: level ?? 6 }), decompress };
  }
  if (algorithm === 'lz4') {
    require.resolve('lz4-wasm-nodejs'); // fails here, with the hint above, if the package is missing (compiled only when a worker or a fallback needs it: 2 ms of archive-push otherwise)
    // Imported here: node:worker_threads costs every archive-push start-up ~0.5 ms, and it never starts a worker.
    const { Lz4WorkerPool } = await import('./lz4-workers.js');
    const { compressLz4FrameNative } = await import('./lz4-native.js');
    const workers = new Lz4WorkerPool(undefined, undefined, undefined, compressLz4FrameNative);
    return { algorithm, compress: (block, _level, long) => workers.compress(block, long), newFrame: (size) => workers.newFrame(size), decompress: async (frame, limit) => decodeLz4Frame(frame, limit), decompressSync: decodeLz4Frame };
  }
  const zstd = require('@mongodb-js/zstd/bindings.js') as { compress(data: Buffer, level?: number): Promise<Buffer>; decompress(data: Buffer): Promise<Buffer> };
  // Its decompress has no output limit: zstd-decode.ts bounds it by the frame's block headers.
  return { algorithm, compress: (block, level) => zstd.compress(block, level ?? 1), decompress: (frame, limit) => decodeZstdFrame(frame, limit, (bytes) => zstd.decompress(bytes)) };
}
