/**
 * The hot path: archive-push and archive-get. PostgreSQL runs them once per
 * 16 MB WAL segment and waits, so they must start fast. This entry point is
 * bundled into one file (dist/wal-command.cjs, loaded with V8's code cache
 * by wal-bundle.ts) with only what it needs: the config as the full path
 * last validated it (validated-config.ts), the posix driver and the archive
 * code; no commander, no validator, no PostgreSQL client. Anything it does
 * not handle alone (a config without --config, or changed since it was
 * validated, JS/TS configs, plugins, notifications, archive hook scripts,
 * non-posix repositories) goes through the full path
 * (wal-full.ts), which behaves the same, only slower to start. It also
 * runs the WAL server (wal-server.ts), which serves both.
 */
import path from 'node:path';
import { Harbor, createLogger, type LoadedConfig, type ServerConfig } from '@pgharbor/core';
import posixPlugin from '@pgharbor/storage-posix';
import { parseWalArgs } from './wal-args.js';
import { processIo, serveWalCommands, startWalServer, type WalRunOptions } from './wal-server.js';
import { runWalWork } from './wal-work.js';
import { readConfigText, validatedConfig } from './validated-config.js';

/** wal-full.ts's runFullWalCommand. */
export type FullWalRunner = (argv: string[], options: WalRunOptions & { startServer?: boolean }) => Promise<number | undefined>;

export interface WalCommandOptions extends WalRunOptions {
  /** After doing the work alone, start a WAL server for the next calls (bin.ts, when none answered). */
  startServer?: boolean;
  /**
   * The full path (wal-full.ts: an ES module, which bin.ts imports on
   * demand): what the WAL server runs for the configs the lean path leaves to it.
   */
  full?: FullWalRunner;
}

/** Returns the exit code, or undefined when the full path must handle this invocation. */
export async function runWalCommand(argv: string[], options: WalCommandOptions = {}): Promise<number | undefined> {
  const args = parseWalArgs(argv.slice(2));
  if (!args?.config) return undefined;
  const cwd = options.cwd ?? process.cwd();
  const io = options.io ?? processIo;
  if (args.command === 'wal-server') {
    if (args.operands.length !== 0) return undefined;
    return serveWalCommands(path.resolve(cwd, args.config), (served, request) => runWalCommand(served, { ...request, full: options.full }));
  }
  const loaded = readValidatedConfig(path.resolve(cwd, args.config));
  const server = loaded?.config.servers[args.operands[0]];
  if (!loaded || !server || !isLeanServer(server)) {
    // In the WAL server the full path is loaded already: it serves what the lean one cannot.
    return options.viaServer && options.full ? options.full(argv, { cwd, io, viaServer: true }) : undefined;
  }
  if (options.viaServer && server.archive_server === false) return undefined;

  const logger = createLogger({ level: 'warn', write: (line) => io.stderr(line + '\n') });
  const code = await runWalWork(() => Harbor.fromTrustedConfig(loaded, [posixPlugin], logger), args, cwd, io);
  if (options.startServer && server.archive_server !== false) startWalServer(loaded.filepath);
  return code;
}

/**
 * The config as the full CLI validated it (validated-config.ts), when it
 * is a file the lean path may read; undefined sends the call to the full
 * path, which validates it (exit 2 on an error) and remembers the result.
 */
function readValidatedConfig(file: string): LoadedConfig | undefined {
  const filepath = path.resolve(file);
  if (!/\.(ya?ml|json)$|\/\.pgharborrc$/.test(filepath)) return undefined;
  const text = readConfigText(filepath);
  const loaded = text === undefined ? undefined : validatedConfig(filepath, text);
  if (!loaded) return undefined;
  const { config } = loaded;
  if (config.plugins?.length || (Array.isArray(config.notifications) && config.notifications.length)) return undefined;
  return loaded;
}

/** Posix repositories only, no archive hook scripts: the lean path then does exactly what the full one would. */
function isLeanServer(server: ServerConfig): boolean {
  if (Object.keys(server).some((key) => key.includes('archive_') && key.endsWith('_script'))) return false;
  if (!Array.isArray(server.repositories) || server.repositories.length === 0) return false;
  for (const repo of server.repositories) {
    if (repo.type !== 'posix' || typeof repo.path !== 'string') return false;
    // compression and encryption work here too: their libraries load only when a file needs them.
    if (Object.keys(repo).some((key) => !['type', 'name', 'path', 'compression', 'compression_level', 'encryption'].includes(key))) return false;
  }
  return true;
}
