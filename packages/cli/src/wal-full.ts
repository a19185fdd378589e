/**
 * archive-push and archive-get for the configs the lean path
 * (wal-command.ts) leaves alone: S3 and SFTP repositories, notifications,
 * archive hook scripts, plugins, JS/TS configs. The config is loaded and
 * validated as every command does (Harbor.load); the work is the same
 * runWalWork. bin.ts imports it (an ES module: plugins and drivers are
 * imported on demand) for a call that neither a WAL server nor the lean
 * path handled, and so does the WAL server for such a call: it stays
 * loaded there. Configs with plugins are never served: a plugin's code
 * stays loaded in a server, and an edit of it would go unnoticed.
 */
import path from 'node:path';
import { Harbor, createLogger } from '@pgharbor/core';
import { parseWalArgs } from './wal-args.js';
import { processIo, startWalServer, type WalRunOptions } from './wal-server.js';
import { runWalWork } from './wal-work.js';
import { readConfigText, rememberValidatedConfig } from './validated-config.js';

/** The exit code, or undefined when the full CLI must parse and explain these arguments (or the WAL server declines). */
export async function runFullWalCommand(argv: string[], options: WalRunOptions & { startServer?: boolean } = {}): Promise<number | undefined> {
  const args = parseWalArgs(argv.slice(2));
  if (!args || args.command === 'wal-server') return undefined;
  const cwd = options.cwd ?? process.cwd();
  const io = options.io ?? processIo;
  // Without --config the config is searched from the working directory up: no server (it is found by its config file).
  const configFile = args.config ? path.resolve(cwd, args.config) : undefined;
  if (!configFile && options.viaServer) return undefined;
  let harbor: Harbor | undefined;
  const servable = (): boolean => {
    if (!harbor || !configFile || harbor.config.config.plugins?.length) return false;
    return harbor.config.config.servers[args.operands[0]]?.archive_server !== false;
  };
  const load = async () => {
    const textBefore = configFile && readConfigText(configFile);
    harbor = await Harbor.load({ configFile, cwd, logger: createLogger({ level: args.logLevel ?? 'info', write: (line) => io.stderr(line + '\n') }) });
    // The lean path's next calls use this validation (validated-config.ts); configs with plugins it never takes.
    if (!harbor.config.config.plugins?.length) rememberValidatedConfig(harbor.config, textBefore || undefined);
    return harbor;
  };
  const code = await runWalWork(load, args, cwd, io, options.viaServer ? servable : undefined);
  if (options.startServer && code !== undefined && servable()) startWalServer(configFile!);
  return code;
}
