import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MAX_BLOCK, lz4FrameFromBlocks } from './lz4-frame.js';

type Lz4Napi = { compress(data: Uint8Array): Promise<Buffer> };
let napi: Lz4Napi | undefined;

/**
 * One LZ4 frame holding `data`, its blocks compressed by lz4-napi (native
 * lz4_flex) on libuv's thread pool, in parallel with each other and with
 * whatever the main thread does meanwhile: archive-push hashes the segment
 * while its frames compress. A 16 MiB WAL segment compressed in 5-7 ms
 * this way, against 10-16 ms for the WebAssembly build on the main thread.
 * Only for short jobs: lz4-napi's outputs are allocated outside V8's view
 * and pinned until a collection (see lz4-frame.ts); a long stream goes to
 * lz4-workers.ts after its first segments' worth.
 */
export async function compressLz4FrameNative(data: Buffer): Promise<Buffer> {
  napi ??= loadNapi();
  const blocks = lz4FrameBlocks(data);
  const compressed = await Promise.all(blocks.map((block) => napi!.compress(block)));
  return lz4FrameFromBlocks(blocks, compressed.map((output) => output.subarray(4))); // after lz4_flex's 4-byte size prefix
}

function lz4FrameBlocks(data: Buffer): Buffer[] {
  const blocks: Buffer[] = [];
  for (let at = 0; at < data.length; at += MAX_BLOCK) blocks.push(data.subarray(at, at + MAX_BLOCK));
  return blocks;
}

/**
 * lz4-napi's index.js finds its binary by probing the platform (it reads
 * /usr/bin/ldd to tell glibc from musl): a few ms of every compressed
 * archive-push. On linux x64 without musl's loader, the binary package it
 * would pick is loaded directly; anything unexpected goes through index.js.
 */
function loadNapi(): Lz4Napi {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux' && process.arch === 'x64' && !existsSync('/lib/ld-musl-x86_64.so.1')) {
    try {
      return require('@antoniomuso/lz4-napi-linux-x64-gnu') as Lz4Napi;
    } catch {
      // not installed where we can see it: the package's own loader knows where to look
    }
  }
  return require('lz4-napi') as Lz4Napi;
}
