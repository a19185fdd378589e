import type { LogLevel } from '@pgharbor/core';

/** archive-push / archive-get / wal-server as the WAL paths parse them: no option parser, only what they accept. */
export interface WalArgs {
  config?: string;
  json: boolean;
  logLevel?: LogLevel;
  command: 'archive-push' | 'archive-get' | 'wal-server';
  operands: string[];
}

/** Undefined for anything else or anything unusual: the full CLI then parses and explains it. */
export function parseWalArgs(args: string[]): WalArgs | undefined {
  let config: string | undefined;
  let json = false;
  let logLevel: LogLevel | undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--config' || arg === '-c') config = args[++i];
    else if (arg.startsWith('--config=')) config = arg.slice('--config='.length);
    else if (arg === '--json') json = true;
    else if (arg === '--log-level' && ['debug', 'info', 'warn', 'error'].includes(args[i + 1])) logLevel = args[++i] as LogLevel;
    else if (arg.startsWith('-')) return undefined;
    else rest.push(arg);
  }
  const [command, ...operands] = rest;
  if (command !== 'archive-push' && command !== 'archive-get' && command !== 'wal-server') return undefined;
  return { config, json, logLevel, command, operands };
}
