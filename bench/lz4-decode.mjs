#!/usr/bin/env node
// Restore-side lz4 decoding speed: MiB/s (of output, per CPU second) of
// decodeLz4Frame on 1 MiB frames of real relation files, compressed as
// pgharbor stores them. Only reads the files. See bench/README.md.
//
//   node bench/lz4-decode.mjs FILE...        e.g. a pgbench cluster's pgbench_accounts and its pkey index
//   PGHARBOR_CORE=/other/packages/core/dist node bench/lz4-decode.mjs FILE...   this build against another, interleaved
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
/** The limit decodeStream passes (decode-bounds.ts FRAME_SIZE); builds before it ignore the argument. */
const FRAME_LIMIT = MiB;
const SAMPLE_MIB = Number(process.env.SAMPLE_MIB ?? 48); // per file: three runs of frames from the start, middle and end
const SECONDS = Number(process.env.SECONDS_PER_FILE ?? 6);
const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node bench/lz4-decode.mjs RELATION_FILE...');
  process.exit(2);
}

const builds = [path.join(HERE, '../packages/core/dist'), ...(process.env.PGHARBOR_CORE ? [process.env.PGHARBOR_CORE] : [])];
const load = async (dist) => ({
  dist,
  decode: (await import(pathToFileURL(path.join(dist, 'codec/lz4-decode.js')).href)).decodeLz4Frame,
  giveBack: (await import(pathToFileURL(path.join(dist, 'codec/buffer-pool.js')).href)).givePooledBuffer,
});
const decoders = await Promise.all(builds.map(load));
const { loadCompressor } = await import(pathToFileURL(path.join(builds[0], 'codec/compressors.js')).href);
const lz4 = await loadCompressor('lz4');

for (const file of files) {
  const { frames, originals } = await sample(file);
  const compressed = frames.reduce((sum, frame) => sum + frame.length, 0);
  const bytes = originals.reduce((sum, original) => sum + original.length, 0);
  for (const { decode, giveBack } of decoders) {
    frames.forEach((frame, i) => {
      const out = decode(frame, FRAME_LIMIT);
      if (!out.equals(originals[i])) throw new Error(`${file}: frame ${i} decodes to other bytes`);
      giveBack(out);
    });
  }
  // Interleaved passes over all frames, timed in CPU time: a busy machine slows every build alike.
  const passes = decoders.map(() => []);
  const until = Date.now() + SECONDS * 1000;
  while (Date.now() < until) {
    decoders.forEach(({ decode, giveBack }, k) => {
      const start = process.cpuUsage();
      for (const frame of frames) giveBack(decode(frame, FRAME_LIMIT));
      const used = process.cpuUsage(start);
      passes[k].push((used.user + used.system) / 1e6);
    });
  }
  console.log(`${file}: ${frames.length} frames, ratio ${(bytes / compressed).toFixed(2)}`);
  decoders.forEach(({ dist }, k) => {
    const times = passes[k].sort((a, b) => a - b);
    const rate = (seconds) => Math.round(bytes / MiB / seconds);
    console.log(`  ${dist}: median ${rate(times[times.length >> 1])} MiB/s, best ${rate(times[0])} (${times.length} passes)`);
  });
}

/** Up to SAMPLE_MIB 1 MiB frames of the file, a third each from its start, middle and end. */
async function sample(file) {
  const fd = openSync(file, 'r');
  try {
    const size = Math.floor(fstatSync(fd).size / MiB);
    const per = Math.max(1, Math.floor(SAMPLE_MIB / 3));
    const starts = [...new Set([0, Math.max(0, Math.floor(size / 2) - Math.floor(per / 2)), Math.max(0, size - per)])];
    const frames = [];
    const originals = [];
    for (const start of starts) {
      for (let i = start; i < Math.min(size, start + per); i++) {
        const original = Buffer.alloc(MiB);
        readSync(fd, original, 0, MiB, i * MiB);
        originals.push(original);
        frames.push(await lz4.compress(original, undefined));
      }
    }
    if (!frames.length) throw new Error(`${file}: smaller than 1 MiB`);
    return { frames, originals };
  } finally {
    closeSync(fd);
  }
}

