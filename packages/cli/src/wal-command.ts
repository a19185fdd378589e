/**
 * The hot path: archive-push and archive-get. PostgreSQL runs them once per
 * 16 MB WAL segment and waits, so they must start fast. This entry point is
 * bundled into one file (dist/wal-command.cjs, loaded with V8's code cache
 * by wal-bundle.ts) with only what it needs:
 * YAML/JSON config, the posix driver and the archive code; no commander, no
 * validator, no PostgreSQL client. Anything it does not handle alone (a
 * config without --config, JS/TS configs, plugins, notifications, archive
 * hook scripts, non-posix repositories) goes through the full CLI, which
 * behaves the same, only slower to start.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { Harbor, HarborError, archiveGet, archivePush, archivePushAsync, asyncArchiveSettings, createLogger, redact, type LoadedConfig, type PgharborConfig, type ServerConfig } from '@pgharbor/core';
import posixPlugin from '@pgharbor/storage-posix';
import { archiverStarter } from './archiver-spawn.js';
import { rememberSpool } from './async-confirm.js';
import { serveWalCommands, startWalServer, type WalRunOptions } from './wal-server.js';

interface WalArgs {
  config?: string;
  json: boolean;
  command: 'archive-push' | 'archive-get' | 'wal-server';
  operands: string[];
}

export interface WalCommandOptions extends WalRunOptions {
  /** After doing the work alone, start a WAL server for the next calls (bin.ts, when none answered). */
  startServer?: boolean;
}

const processIo = { stdout: (text: string) => void process.stdout.write(text), stderr: (text: string) => void process.stderr.write(text) };

/** Returns the exit code, or undefined when the full CLI must handle this invocation. */
export async function runWalCommand(argv: string[], options: WalCommandOptions = {}): Promise<number | undefined> {
  const args = parseArgs(argv.slice(2));
  if (!args?.config) return undefined;
  const cwd = options.cwd ?? process.cwd();
  const io = options.io ?? processIo;
  const loaded = readSimpleConfig(path.resolve(cwd, args.config));
  if (!loaded) return undefined;
  if (args.command === 'wal-server') return args.operands.length === 0 ? serveWalCommands(loaded.filepath, runWalCommand) : undefined;
  const serverName = args.operands[0];
  const server = loaded.config.servers[serverName];
  if (!server || !isLeanServer(server, loaded.dir)) return undefined;
  if (options.viaServer && server.archive_server === false) return undefined;
  server.method ??= 'basebackup';

  const code = await runLean(args, loaded, serverName, server, cwd, io);
  if (options.startServer && server.archive_server !== false) startWalServer(loaded.filepath);
  return code;
}

async function runLean(args: WalArgs, loaded: LoadedConfig, serverName: string, server: ServerConfig, cwd: string, io: NonNullable<WalRunOptions['io']>): Promise<number | undefined> {
  try {
    const harbor = await Harbor.fromTrustedConfig(loaded, [posixPlugin], createLogger({ level: 'warn', write: (line) => io.stderr(line + '\n') }));
    try {
      const handle = harbor.server(serverName);
      if (args.command === 'archive-push') {
        if (args.operands.length !== 2) return undefined;
        const walPath = path.resolve(cwd, args.operands[1]);
        if (server.archive_async) {
          const settings = asyncArchiveSettings(harbor, handle);
          rememberSpool(loaded.filepath, serverName, settings.spoolDir);
          await archivePushAsync(settings, serverName, walPath, archiverStarter(loaded.filepath, serverName, settings.spoolDir));
          return 0;
        }
        const results = await archivePush(harbor, handle, walPath);
        if (args.json) io.stdout(JSON.stringify(results) + '\n');
        return 0;
      }
      if (args.operands.length !== 3) return undefined;
      const outcome = await archiveGet(harbor, handle, args.operands[1], path.resolve(cwd, args.operands[2]));
      return outcome.found ? 0 : 1;
    } finally {
      await harbor.close();
    }
  } catch (error) {
    if (error instanceof HarborError) {
      io.stderr(redact(`ERROR: ${error.message}\n${error.hint ? `HINT: ${error.hint}\n` : ''}`));
      return error.exitCode;
    }
    io.stderr(redact(`ERROR: ${(error as Error)?.message ?? String(error)}\n`));
    return 1;
  }
}

function parseArgs(args: string[]): WalArgs | undefined {
  let config: string | undefined;
  let json = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--config' || arg === '-c') config = args[++i];
    else if (arg.startsWith('--config=')) config = arg.slice('--config='.length);
    else if (arg === '--json') json = true;
    else if (arg === '--log-level') i++;
    else if (arg.startsWith('-')) return undefined; // anything unusual: let the full CLI explain it
    else rest.push(arg);
  }
  const [command, ...operands] = rest;
  if (command !== 'archive-push' && command !== 'archive-get' && command !== 'wal-server') return undefined;
  return { config, json, command, operands };
}

function readSimpleConfig(file: string): LoadedConfig | undefined {
  const filepath = path.resolve(file);
  if (!/\.(ya?ml|json)$|\/\.pgharborrc$/.test(filepath)) return undefined;
  let raw: unknown;
  try {
    const text = readFileSync(filepath, 'utf8');
    raw = filepath.endsWith('.json') ? JSON.parse(text) : yaml.load(text);
  } catch {
    return undefined; // the full CLI reports config errors properly
  }
  const config = raw as PgharborConfig & Record<string, unknown>;
  if (!config || typeof config !== 'object' || !config.servers || typeof config.servers !== 'object') return undefined;
  if (config.plugins?.length || (Array.isArray(config.notifications) && config.notifications.length)) return undefined;
  if (config.defaults) {
    for (const [name, server] of Object.entries(config.servers)) config.servers[name] = { ...config.defaults, ...server } as ServerConfig;
  }
  return { config, filepath, dir: path.dirname(filepath) };
}

/** Posix repositories only, no archive hook scripts: the lean path then does exactly what the full one would. */
function isLeanServer(server: ServerConfig, configDir: string): boolean {
  if (Object.keys(server).some((key) => key.includes('archive_') && key.endsWith('_script'))) return false;
  if (!Array.isArray(server.repositories) || server.repositories.length === 0) return false;
  for (const repo of server.repositories) {
    if (repo.type !== 'posix' || typeof repo.path !== 'string') return false;
    // compression and encryption work here too: their libraries load only when a file needs them.
    if (Object.keys(repo).some((key) => !['type', 'name', 'path', 'compression', 'compression_level', 'encryption'].includes(key))) return false;
    repo.path = path.resolve(configDir, repo.path);
  }
  return true;
}
