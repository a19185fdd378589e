#!/usr/bin/env node
// Decoding bombs (docs/security.md, "Decoding is bounded"): each decoded by
// decodeStream as a restore does (a file of 8 KiB in the manifest), in a
// child process of its own, which reports its peak RSS (getrusage maxrss),
// the time until decoding stopped, and how it stopped. See bench/README.md.
//
//   node bench/decode-bombs.mjs                                   this build
//   PGHARBOR_CORE=/other/packages/core/dist node bench/decode-bombs.mjs   and another, bomb by bomb
//   BOMB_TIMEOUT=60 (s): a child still decoding then is killed and reported so
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OURS = path.join(HERE, '../packages/core/dist');
const builds = [OURS, ...(process.env.PGHARBOR_CORE ? [process.env.PGHARBOR_CORE] : [])];
const TIMEOUT = Number(process.env.BOMB_TIMEOUT ?? 60);
const MiB = 1024 * 1024;

// [label, codec, how to build it from decoding-bombs.js]
const bombs = [
  ['zstd: one frame of compressed blocks, 2.5 GiB in 160 KB', 'zstd', `zstdBlockBomb(${2560 * MiB})`],
  ['zstd: 1 GiB of valid 1 MiB frames, 64 KB', 'zstd', 'zstdFramesOf1MiB(1024)'],
  ['lz4: one frame of 256 blocks of 4 MiB, 4 MB', 'lz4', 'lz4BlockBomb(256)'],
  ['lz4: one frame of one 4 MiB block, 16 KB', 'lz4', 'lz4BlockBomb(1)'],
  ['lz4: 1 GiB of valid 1 MiB frames, 4 MB', 'lz4', 'lz4FramesOf1MiB(1024)'],
  ['gzip: 1 GiB of zeros, 1 MB', 'gzip', 'gzipBomb(1024)'],
];

// The child: builds the bomb with this build's decoding-bombs.js, decodes it with the build under test.
const child = `
const [bombs, dist, codec, make] = process.argv.slice(1);
const made = await import(bombs);
const bomb = new Function('b', 'return b.' + make)(made);
const { decodeStream } = await import(dist + '/codec/stream-codec.js');
async function* chunks() { for (let i = 0; i < bomb.length; i += 65536) yield bomb.subarray(i, i + 65536); }
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
let decoded = 0, outcome = 'decoded everything';
try { for await (const chunk of decodeStream(chunks(), codec, undefined, { bytes: 8192, exact: true })) decoded += chunk.length; }
catch (error) { outcome = error.message; }
console.log(JSON.stringify({ ms: performance.now() - started, decoded, outcome, rssBeforeMb: rssBefore / 2 ** 20, peakMb: process.resourceUsage().maxRSS / 1024 }));
`;

const bombsModule = pathToFileURL(path.join(OURS, 'testing/decoding-bombs.js')).href;
console.log(`node ${process.version}; each bomb decoded as a file of 8192 bytes; timeout ${TIMEOUT} s`);
for (const [label, codec, make] of bombs) {
  console.log(label);
  for (const dist of builds) {
    let line;
    try {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', child, bombsModule, pathToFileURL(dist).href, codec, make], { timeout: TIMEOUT * 1000, maxBuffer: 1 << 20 });
      const r = JSON.parse(out.toString());
      line = `${r.ms.toFixed(0).padStart(6)} ms  peak ${r.peakMb.toFixed(0).padStart(5)} MB (${r.rssBeforeMb.toFixed(0)} before decoding)  ${r.decoded} bytes out  ${r.outcome.slice(0, 110)}`;
    } catch (error) {
      line = error.signal === 'SIGTERM' ? `killed after ${TIMEOUT} s, still decoding` : `child failed: ${String(error.stderr ?? error.message).trim().split('\n').at(-1)}`;
    }
    console.log(`  ${path.relative(process.cwd(), dist) || dist}: ${line}`);
  }
}
