/**
 * Loads dist/wal-command.cjs (the esbuild bundle of wal-command.ts) with
 * V8's code cache. Compiling the bundle's ~300 KB costs archive-push more
 * than its own work on a small segment, and Node 20 has no
 * module.enableCompileCache; `vm.Script` takes the cached code the build
 * made (scripts/wal-code-cache.mjs) after a training run, so the functions
 * archive-push and archive-get use are ready compiled too.
 *
 * The cache file starts with the sha256 of the bundle it belongs to: V8
 * itself checks only the source's length, and a stale cache must never run
 * against a rebuilt bundle. A cache V8 rejects (other Node version or
 * flags) just means compiling as usual.
 */
import type { createHash as CreateHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import type { FullWalRunner } from './wal-command.js';

export interface WalBundle {
  runWalCommand(argv: string[], options?: { startServer?: boolean; full?: FullWalRunner }): Promise<number | undefined>;
}

export interface LoadedWalBundle {
  exports: WalBundle;
  script: vm.Script;
  sourceHash: string;
  /** Whether V8 used the cache file. */
  cacheUsed: boolean;
}

const HASH_BYTES = 32;

export const bundleFile = (dir = path.dirname(fileURLToPath(import.meta.url))) => path.join(dir, 'wal-command.cjs');
export const cacheFile = (bundle: string) => `${bundle}.cache`;

/** Undefined when the bundle was not built (a tsc-only build): then the full CLI runs. */
export function loadWalBundle(file = bundleFile(), useCache = true): LoadedWalBundle | undefined {
  let source: Buffer;
  try {
    source = readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // Required here, not imported: bin.js imports this module before it knows whether the bundle is needed.
  const { createHash } = createRequire(import.meta.url)('node:crypto') as { createHash: typeof CreateHash };
  const sourceHash = createHash('sha256').update(source).digest();
  let cachedData: Buffer | undefined;
  if (useCache) {
    try {
      const cache = readFileSync(cacheFile(file));
      if (cache.subarray(0, HASH_BYTES).equals(sourceHash)) cachedData = cache.subarray(HASH_BYTES);
    } catch {
      // no cache: compile
    }
  }
  // The CommonJS wrapper, as Node's loader would add it.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source.toString('utf8')}\n})`, { filename: file, cachedData });
  const module = { exports: {} as WalBundle };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(file), module, file, path.dirname(file));
  return { exports: module.exports, script, sourceHash: sourceHash.toString('hex'), cacheUsed: cachedData !== undefined && !script.cachedDataRejected };
}

/** The cache file's bytes for what this process compiled and ran so far (see the build's training run). */
export function codeCache(loaded: LoadedWalBundle): Buffer {
  return Buffer.concat([Buffer.from(loaded.sourceHash, 'hex'), loaded.script.createCachedData()]);
}
