/**
 * Where the WAL server of a config listens (see wal-server.ts). One server
 * per config file and environment: the server answers with the environment
 * it was started with (secrets given as `from_env`, PG* variables), so a
 * caller whose environment differs must find another server, never this one.
 */
import path from 'node:path';
import { fnv1a, privateDir } from './private-dir.js';

/** Variables that differ between two shells of one user without changing what pgharbor does. */
const IGNORED = new Set(['PWD', 'OLDPWD', 'SHLVL', '_']);

/** Unix socket paths are limited to 108 bytes (sun_path). */
const MAX_SOCKET_PATH = 100;

export interface WalServerAddress {
  /** The config file, absolute: what the server serves. */
  config: string;
  socket: string;
  log: string;
}

export function walServerAddress(configFile: string, cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): WalServerAddress | undefined {
  const config = path.resolve(cwd, configFile);
  const environment = Object.keys(env)
    .filter((name) => !IGNORED.has(name))
    .sort()
    .map((name) => `${name}=${env[name]}`)
    .join('\0');
  const base = path.join(privateDir(), `wal-server-${fnv1a(`${config}\0${environment}`)}`);
  if (`${base}.sock`.length > MAX_SOCKET_PATH) return undefined; // a long TMPDIR: no server, every call works alone
  return { config, socket: `${base}.sock`, log: `${base}.log` };
}

/** `--config F` (or `--config=F`, `-c F`) from an argv, as the lean path parses it. */
export function configArgument(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config' || args[i] === '-c') return args[i + 1];
    if (args[i].startsWith('--config=')) return args[i].slice('--config='.length);
  }
  return undefined;
}
