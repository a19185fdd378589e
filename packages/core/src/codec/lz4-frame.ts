import { createRequire } from 'node:module';

/**
 * Writes LZ4 frames (LZ4 Frame Format 1.6) around blocks compressed by
 * `lz4-wasm-nodejs` (lz4_flex, the Rust LZ4, built for WebAssembly by its
 * author): independent blocks of up to 4 MiB, no checksums, an
 * uncompressible block stored as it is. They are what `lz4 -d` and
 * lz4-decode.ts read.
 *
 * Why WebAssembly and not a native addon: lz4-napi's outputs are allocated
 * by Rust outside V8's view (about 1 MiB of capacity pinned per output until
 * the garbage collector happens to run), and a 1.5 GB lz4 backup peaked at
 * 190-210 MB RSS against 127 MB uncompressed. Here the block is compressed
 * inside the module's own memory and copied straight into the caller's
 * buffer: no allocation per block at all. lz4_flex in WebAssembly
 * compressed pgbench data at 1,470 MiB/s here, against 1,320 MiB/s for
 * lz4-napi's synchronous call. It runs on the calling thread:
 * lz4-workers.ts moves long streams off the main thread.
 *
 * Only ever for compressing: the lz4_flex in this package predates fixes to
 * its decoder's match-offset checks (a damaged block can decode silently to
 * stale memory), and a restore's main thread must not grow a WebAssembly
 * memory at all: that detaches an ArrayBuffer, after which V8 checks every
 * typed-array access and lz4-block-decode.ts runs ~30% slower.
 */
const FRAME_HEADER = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]); // magic, FLG 0x60 (v1, independent blocks), BD 0x70 (4 MiB), header checksum (xxh32 >> 8)
export const MAX_BLOCK = 4 << 20;
const UNCOMPRESSED = 0x80000000;

/** The largest frame for `size` bytes: every block stored as it is, at worst. */
export function lz4FrameBound(size: number): number {
  return FRAME_HEADER.length + Math.max(1, Math.ceil(size / MAX_BLOCK)) * 4 + size + 4;
}

/**
 * The raw exports of lz4-wasm-nodejs 0.9.2 (version pinned): its
 * wasm-bindgen wrapper would copy every output into a fresh array, and
 * those arrays were the garbage this module exists to avoid.
 */
interface Lz4Exports {
  memory: WebAssembly.Memory;
  compress(retptr: number, ptr: number, len: number): void;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
}
let wasm: Lz4Exports | undefined;

/** The WebAssembly module, compiled on first use (~2 ms). */
export function loadLz4(): Lz4Exports {
  return (wasm ??= (createRequire(import.meta.url)('lz4-wasm-nodejs') as { __wasm: Lz4Exports }).__wasm);
}

/** Writes one LZ4 frame holding `data` into `out` (at least lz4FrameBound(data.length) bytes); returns its length. */
export function writeLz4Frame(data: Uint8Array, out: Uint8Array): number {
  const lz4 = wasm ?? loadLz4();
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(FRAME_HEADER, 0);
  let at = FRAME_HEADER.length;
  for (let start = 0; start < data.length; start += MAX_BLOCK) {
    const block = data.subarray(start, start + MAX_BLOCK);
    const retptr = lz4.__wbindgen_add_to_stack_pointer(-16);
    try {
      // lz4_flex's compress_prepend_size, as the wrapper calls it: the module frees the input and
      // returns (pointer, length) of its output, which starts with 4 bytes of original size.
      const input = lz4.__wbindgen_malloc(block.length);
      new Uint8Array(lz4.memory.buffer, input, block.length).set(block);
      lz4.compress(retptr, input, block.length);
      const [output, length] = new Int32Array(lz4.memory.buffer, retptr, 2);
      at = putBlock(out, view, at, block, new Uint8Array(lz4.memory.buffer, output + 4, length - 4));
      lz4.__wbindgen_free(output, length);
    } finally {
      lz4.__wbindgen_add_to_stack_pointer(16);
    }
  }
  view.setUint32(at, 0, true); // end mark
  return at + 4;
}

/** A frame of blocks compressed elsewhere (lz4-native.ts): `raws[i]` is block i compressed, without a size prefix. */
export function lz4FrameFromBlocks(blocks: Uint8Array[], raws: Uint8Array[]): Buffer {
  const size = blocks.reduce((sum, block, i) => sum + 4 + Math.min(block.length, raws[i].length), FRAME_HEADER.length + 4);
  const out = Buffer.allocUnsafe(size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(FRAME_HEADER, 0);
  let at = FRAME_HEADER.length;
  blocks.forEach((block, i) => (at = putBlock(out, view, at, block, raws[i])));
  view.setUint32(at, 0, true); // end mark
  return out;
}

/** One block at `at`: its compressed bytes, or the block itself when compressing did not make it smaller. */
function putBlock(out: Uint8Array, view: DataView, at: number, block: Uint8Array, raw: Uint8Array): number {
  if (raw.length < block.length) {
    view.setUint32(at, raw.length, true);
    out.set(raw, at + 4);
    return at + 4 + raw.length;
  }
  view.setUint32(at, (block.length | UNCOMPRESSED) >>> 0, true);
  out.set(block, at + 4);
  return at + 4 + block.length;
}

/** Scratch space for compressLz4Frame, kept between calls (frames are ≤ 1 MiB but for a caller's whole buffer). */
let scratch = Buffer.alloc(0);

/** One LZ4 frame holding `data`, in a buffer of its own. */
export function compressLz4Frame(data: Uint8Array): Buffer {
  const bound = lz4FrameBound(data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  return Buffer.from(scratch.subarray(0, writeLz4Frame(data, scratch)));
}
