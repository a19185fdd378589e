#!/usr/bin/env node
// Build step after the esbuild bundle: a training run of archive-push and
// archive-get (uncompressed and lz4, first push, repeated push, fetch, a
// miss) in a scratch directory, then V8's code cache of everything that
// ran, written next to the bundle (see src/wal-bundle.ts). Without it
// every archive-push compiles the bundle from scratch.
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const { loadWalBundle, codeCache, bundleFile, cacheFile } = await import(path.join(dist, 'wal-bundle.js'));
const bundle = bundleFile(dist);
const loaded = loadWalBundle(bundle, false);
if (!loaded) throw new Error(`${bundle} is missing: run the bundle step first`);

let forgetScratchConfig = () => {};
const scratch = mkdtempSync(path.join(os.tmpdir(), 'pgharbor-code-cache-'));
try {
  // A 4 MiB "segment" with a PostgreSQL 15 long page header: two read chunks, several compression frames.
  const segment = path.join(scratch, '000000010000000000000001');
  const content = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < content.length; i += 8) content.writeUInt32LE((i * 2654435761) >>> 0, i);
  content.writeUInt16LE(0xd110, 0);
  content.writeUInt16LE(0x0002, 2);
  content.writeUInt32LE(1, 4);
  content.writeBigUInt64LE(7000000000000000001n, 24);
  content.writeUInt32LE(content.length, 32); // xlp_seg_size: archive-get serves exactly that many bytes
  writeFileSync(segment, content);
  const config = path.join(scratch, 'pgharbor.yaml');
  writeFileSync(
    config,
    ['servers:', ...['none', 'lz4'].flatMap((c) => [`  train_${c}:`, '    conninfo: "host=/nonexistent"', `    repositories: [{ type: posix, path: ${scratch}/repo-${c}, compression: ${c} }]`])].join('\n') + '\n',
  );
  // The lean path runs only on a config the full path validated (src/validated-config.ts): validate it once.
  const { runFullWalCommand } = await import(path.join(dist, 'wal-full.js'));
  const { forgetValidatedConfig } = await import(path.join(dist, 'validated-config.js'));
  forgetScratchConfig = () => forgetValidatedConfig(config);
  await runFullWalCommand([process.execPath, 'bin.js', '--config', config, 'archive-get', 'train_none', '000000010000000000000009', path.join(scratch, 'missing')], { io: { stdout() {}, stderr() {} } });
  const run = async (...args) => {
    const code = await loaded.exports.runWalCommand([process.execPath, 'bin.js', '--config', config, ...args]);
    if (code === undefined) throw new Error(`training run: the lean path refused ${args.join(' ')}`);
    return code;
  };
  for (const c of ['none', 'lz4']) {
    for (let i = 0; i < 2; i++) if ((await run('archive-push', `train_${c}`, segment)) !== 0) throw new Error(`training archive-push ${c} failed`);
    if ((await run('archive-get', `train_${c}`, path.basename(segment), path.join(scratch, `got-${c}`))) !== 0) throw new Error(`training archive-get ${c} failed`);
    await run('archive-get', `train_${c}`, '000000010000000000000002', path.join(scratch, 'missing'));
  }
  const out = cacheFile(bundle);
  writeFileSync(`${out}.tmp`, codeCache(loaded));
  renameSync(`${out}.tmp`, out);
} finally {
  forgetScratchConfig();
  rmSync(scratch, { recursive: true, force: true });
}
