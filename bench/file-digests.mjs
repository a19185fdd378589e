#!/usr/bin/env node
// Single-core throughput of the file digests pgharbor could record (docs/repository-format.md,
// "File digests"): node's sha256 (OpenSSL, SHA-NI where the CPU has it), BLAKE3
// (@napi-rs/blake-hash, what pgharbor writes), and, when installed (npm i --no-save
// @node-rs/xxhash @node-rs/crc32), xxh3 and CRC32C for comparison. The real backup and restore
// paths are timed by `npm run bench:engine -- --digests "sha256 blake3"`.
//
//   node bench/file-digests.mjs [--mib 1024]
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' } } });
const total = Number(values.mib) * 1024 * 1024;
const optional = (name) => {
  try {
    return require(name);
  } catch {
    return undefined;
  }
};
const { Blake3Hasher } = require('@napi-rs/blake-hash');
const xxhash = optional('@node-rs/xxhash');
const crc = optional('@node-rs/crc32');

const candidates = [
  ['sha256 (node:crypto)', () => { const h = createHash('sha256'); return { update: (b) => h.update(b), end: () => h.digest('hex') }; }],
  ['blake3 (@napi-rs/blake-hash)', () => { const h = new Blake3Hasher(); return { update: (b) => h.update(b), end: () => h.digest('hex') }; }],
  ['xxh3-64 streaming (@node-rs/xxhash)', xxhash && (() => { const h = xxhash.xxh3.Xxh3.withSeed(); return { update: (b) => h.update(b), end: () => h.digest() }; })],
  ['xxh3-128 one-shot per chunk (@node-rs/xxhash)', xxhash && (() => ({ update: (b) => xxhash.xxh3.xxh128(b), end: () => 0 }))],
  ['crc32c (@node-rs/crc32)', crc && (() => { let s = 0; return { update: (b) => (s = crc.crc32c(b, s)), end: () => s }; })],
];
console.log(`| digest | chunk | MB/s | CPU s per GiB |`);
console.log(`|---|---|---|---|`);
for (const chunkSize of [8192, 65536, 1024 * 1024]) {
  const chunk = Buffer.alloc(chunkSize);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7919) & 255;
  for (const [name, make] of candidates) {
    if (!make) {
      if (chunkSize === 8192) console.log(`| ${name} | - | not installed | - |`);
      continue;
    }
    const h = make();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let done = 0; done < total; done += chunkSize) h.update(chunk);
    h.end();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    console.log(`| ${name} | ${chunkSize / 1024} KiB | ${(total / 1e6 / s).toFixed(0)} | ${(((cpu.user + cpu.system) / 1e6) * (2 ** 30 / total)).toFixed(2)} |`);
  }
}
