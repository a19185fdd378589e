/**
 * The calling side of the WAL server (wal-server.ts): send this call's
 * arguments and working directory to the server of its config, relay its
 * output and exit code. Undefined whenever that is not possible or the
 * server declines (no server, a stale socket, a server that dies
 * mid-call): the caller then does the work itself. Bundled into bin.cjs,
 * so it loads nothing but node:net, and only when a socket is there.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { isPrivateDir } from './private-dir.js';
import { configArgument, walServerAddress } from './wal-server-address.js';
import type { WalReply } from './wal-server.js';

export function askWalServer(argv: string[]): Promise<number | undefined> {
  const args = argv.slice(2);
  const config = configArgument(args);
  const address = config ? walServerAddress(config) : undefined;
  // Only a socket in a directory nobody else can write to: a forged server could confirm WAL it never stored.
  if (!address || !existsSync(address.socket) || !isPrivateDir(path.dirname(address.socket))) return Promise.resolve(undefined);
  const net = createRequire(import.meta.url)('node:net') as typeof import('node:net');
  return new Promise((resolve) => {
    let settled = false;
    const settle = (code: number | undefined) => {
      if (settled) return;
      settled = true;
      resolve(code);
    };
    let text = '';
    const socket = net.connect(address.socket);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(JSON.stringify({ argv: args, cwd: process.cwd() }) + '\n'));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => settle(undefined));
    socket.on('close', () => {
      if (settled) return;
      let reply: WalReply;
      try {
        reply = JSON.parse(text) as WalReply;
      } catch {
        return settle(undefined); // cut off: the server died mid-call
      }
      if (typeof reply.code !== 'number') return settle(undefined);
      if (reply.stdout) process.stdout.write(reply.stdout);
      if (reply.stderr) process.stderr.write(reply.stderr);
      settle(reply.code);
    });
  });
}
