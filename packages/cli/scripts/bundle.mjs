#!/usr/bin/env node
// Build step after tsc: two CommonJS bundles made by esbuild (the package's
// `bundle` script then runs wal-code-cache.mjs for the second).
//  - dist/bin.cjs: the `pgharbor` binary (src/bin.ts with the two small
//    modules it imports); the full CLI (main.js) stays an ES module,
//    imported when needed.
//  - dist/wal-command.cjs: archive-push/archive-get with only what they need
//    (src/wal-command.ts); loaded by wal-bundle.ts with V8's code cache.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
// import.meta.url in CommonJS: the bundle's own file URL.
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  define: { 'import.meta.url': '__pgharborImportMetaUrl' },
  banner: { js: "const __pgharborImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
};

await build({
  ...common,
  entryPoints: [path.join(dist, 'bin.js')],
  outfile: path.join(dist, 'bin.cjs'),
  external: ['./main.js', './wal-full.js'], // the full CLI and WAL path: a real import() of the ES modules beside the bundle
});
chmodSync(path.join(dist, 'bin.cjs'), 0o755);

await build({
  ...common,
  entryPoints: [path.join(dist, 'wal-command.js')],
  outfile: path.join(dist, 'wal-command.cjs'),
  // import() becomes a require() run when reached: what only some configs need loads only for them.
  supported: { 'dynamic-import': false },
  external: [
    'typescript', 'cosmiconfig', 'ajv', 'pg', 'execa', 'tar-stream', '@aws-sdk/*', 'ssh2', 'ssh2-sftp-client', 'nodemailer',
    '@pgharbor/storage-s3', '@pgharbor/storage-sftp', '@pgharbor/notify-*',
    // Found beside the bundle's package at run time: the WebAssembly file, the native binaries.
    'lz4-wasm-nodejs', 'lz4-napi', '@antoniomuso/*', '@mongodb-js/zstd', '@napi-rs/*',
  ],
});
