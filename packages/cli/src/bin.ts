#!/usr/bin/env node
// The `pgharbor` command. The build bundles this file into dist/bin.cjs,
// the installed binary: CommonJS, because Node starts a CommonJS entry 5-9
// ms sooner than an ES module graph, and archive-push/archive-get run once
// per WAL segment while PostgreSQL waits. Those two ask the config's WAL
// server first (wal-server.ts), then try the bundled lean entry
// (wal-command.ts, which also runs the WAL server); everything else goes to
// the full CLI. async-confirm.js, wal-client.js and wal-bundle.js are tiny
// (and load node:net and node:crypto only when called).
import { confirmFromSpool } from './async-confirm.js';
import { loadWalBundle } from './wal-bundle.js';
import { askWalServer } from './wal-client.js';
import type { FullWalRunner } from './wal-command.js';

async function run(): Promise<void> {
  const walCall = process.argv.some((arg) => arg === 'archive-push' || arg === 'archive-get');
  const hot = walCall || process.argv.includes('wal-server');
  let code: number | undefined;
  // With archive_async, most calls only confirm a stored segment: try that before loading anything;
  // then the resident WAL server of this config (wal-server.ts), which has everything loaded already.
  if (walCall) code = confirmFromSpool(process.argv) ?? (await askWalServer(process.argv));
  if (hot && code === undefined) {
    // Configs the lean path leaves alone (S3, SFTP, notifications, ...): loaded like every command loads them.
    const full: FullWalRunner = async (argv, options) => (await import('./wal-full.js')).runFullWalCommand(argv, options);
    // The bundle of wal-command.ts, with V8's code cache (wal-bundle.ts); absent after a tsc-only build.
    const bundle = loadWalBundle();
    if (bundle) code = await bundle.exports.runWalCommand(process.argv, { startServer: walCall, full });
    if (code === undefined && walCall) code = await full(process.argv, { startServer: true });
  }
  if (code === undefined) {
    const { main } = await import('./main.js');
    code = await main(process.argv);
  }
  process.exitCode = code;
  // PostgreSQL waits for archive_command/restore_command: once the work is done, nothing (a plugin's
  // idle socket, a timer) may keep the process alive.
  if (hot) setImmediate(() => process.exit(code));
}

void run();
