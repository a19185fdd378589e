/**
 * The WAL server: a resident pgharbor process that runs archive-push and
 * archive-get for the calls of one config file (and one environment).
 * PostgreSQL runs archive_command once per 16 MB segment and waits; Node
 * takes ~25 ms to start here and loading pgharbor another ~15 ms, about
 * as long as storing the segment. A call that finds the server
 * (wal-client.ts) only sends its arguments and relays the answer; the
 * server does exactly what the call would have done itself (the same
 * runWalCommand, with the caller's working directory), with its modules
 * loaded and compiled already.
 *
 * Nothing depends on it: a call that finds no server, or a server that
 * declines (config or code changed) or dies mid-call, does the work
 * itself, and pushing a segment twice is harmless. The first such call
 * starts a server for the next ones (`archive_server: false` turns that
 * off). It exits after IDLE_MS without calls, when its config file changes
 * or disappears, when pgharbor is rebuilt or upgraded, or when another
 * server took its socket.
 */
import { closeSync, openSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeInheritedDescriptors } from '@pgharbor/core';
import { fingerprint } from './file-fingerprint.js';
import { ensurePrivateDir } from './private-dir.js';
import { selfCommand } from './self-command.js';
import { configArgument, walServerAddress } from './wal-server-address.js';

/** How long a server waits for the next call before it exits. */
export const IDLE_MS = 5 * 60_000;
/** How often it checks that its config, its code and its socket are still what it serves. */
const TICK_MS = 2_000;

export interface WalRequest {
  /** The caller's argv after node and the script. */
  argv: string[];
  cwd: string;
}

/** code null: the caller does the work itself. */
export interface WalReply {
  code: number | null;
  stdout?: string;
  stderr?: string;
}

export interface WalIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** A call's own stdout and stderr. */
export const processIo: WalIo = { stdout: (text) => void process.stdout.write(text), stderr: (text) => void process.stderr.write(text) };

export interface WalRunOptions {
  cwd?: string;
  io?: WalIo;
  /** Set by the server: a server section with `archive_server: false` leaves the work to the caller. */
  viaServer?: boolean;
}

export type WalRunner = (argv: string[], options: WalRunOptions) => Promise<number | undefined>;

/**
 * The environment this process started with. A server is found by its
 * caller's environment, so it must be started with exactly that, not with
 * what loading pgharbor changed since (the S3 driver sets a variable of the
 * AWS SDK's): this module is loaded before any driver.
 */
const startEnv = { ...process.env };

/** Start a server for `configFile` in the background, for the calls after this one. */
export function startWalServer(configFile: string): void {
  try {
    const address = walServerAddress(configFile, process.cwd(), startEnv);
    if (!address || !ensurePrivateDir(path.dirname(address.socket))) return;
    const log = openSync(address.log, 'a', 0o600);
    try {
      const [node, bin] = selfCommand();
      const { spawn } = load<typeof import('node:child_process')>('node:child_process');
      // cwd /: a resident process must not pin whatever directory its first caller ran in.
      spawn(node, [bin, '--config', address.config, 'wal-server'], { detached: true, stdio: ['ignore', log, log], cwd: '/', env: startEnv }).unref();
    } finally {
      closeSync(log);
    }
  } catch {
    // only an optimisation: the calls go on working alone
  }
}

/** Serve until idle or stale; resolves with the exit code. */
export async function serveWalCommands(configFile: string, run: WalRunner): Promise<number> {
  const address = walServerAddress(configFile, process.cwd(), startEnv);
  if (!address) return say(1, `no WAL server for ${configFile}: the socket path would be too long (set TMPDIR to a shorter directory)`);
  if (!ensurePrivateDir(path.dirname(address.socket))) return say(1, `${path.dirname(address.socket)} is not private to this user (owned by another, or writable by others): no WAL server; remove it, or chown it to this user and chmod 700`);
  if (await answers(address.socket)) return 0; // another one serves already
  closeInheritedDescriptors();
  const configPath = address.config;
  const codeFile = fileURLToPath(import.meta.url);
  const served = { config: fingerprint(address.config), code: fingerprint(codeFile) };
  if (!served.config) return say(1, `cannot read ${address.config}`);

  const server = load<typeof net>('node:net').createServer({ allowHalfOpen: true }, (socket) => void handle(socket));
  let active = 0;
  let lastCall = Date.now();
  let stopping: string | undefined;
  const stale = (): string | undefined => {
    if (fingerprint(address.config) !== served.config) return `${address.config} changed or disappeared`;
    if (fingerprint(codeFile) !== served.code) return 'pgharbor was rebuilt or upgraded';
    return undefined;
  };

  async function handle(socket: net.Socket): Promise<void> {
    active++;
    lastCall = Date.now();
    const reply = (answer: WalReply) => new Promise<void>((resolve) => socket.end(JSON.stringify(answer) + '\n', () => resolve()));
    try {
      const request = await readRequest(socket);
      const why = stopping ?? stale();
      const config = configArgument(request.argv);
      if (why || !config || path.resolve(request.cwd, config) !== configPath) {
        await reply({ code: null });
        if (why) stop(why);
        return;
      }
      let stdout = '';
      let stderr = '';
      const result = await run(['node', 'pgharbor', ...request.argv], { cwd: request.cwd, viaServer: true, io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) } });
      await reply({ code: result ?? null, stdout, stderr });
    } catch {
      socket.destroy(); // a malformed request or a broken connection: the caller works alone
    } finally {
      active--;
      lastCall = Date.now();
    }
  }

  const socketPath = address.socket;
  const ownSocket = `${socketPath}.${process.pid}`;
  try {
    unlinkSync(ownSocket); // left by a killed server that had this pid
  } catch {
    // the usual case: none
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(ownSocket, () => resolve());
  });
  renameSync(ownSocket, socketPath); // atomic: callers see the old server's socket or this one
  const inode = statSync(socketPath).ino;
  log(`serving ${address.config} on ${socketPath} (pid ${process.pid})`);

  let done!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (done = resolve));
  let ticker: NodeJS.Timeout | undefined;
  function stop(why: string): void {
    if (stopping) return;
    stopping = why;
    log(`exiting: ${why}`);
    clearInterval(ticker);
    try {
      if (statSync(socketPath).ino === inode) unlinkSync(socketPath);
    } catch {
      // already gone
    }
    server.close(() => done(0)); // waits for the calls in progress
  }
  ticker = setInterval(() => {
    let socketIno: number | undefined;
    try {
      socketIno = statSync(socketPath).ino;
    } catch {
      // removed
    }
    if (socketIno !== inode) return stop('another WAL server took over the socket');
    const why = stale();
    if (why) return stop(why);
    if (active === 0 && Date.now() - lastCall > IDLE_MS) stop(`no call for ${IDLE_MS / 1000} s`);
  }, TICK_MS);
  return finished;
}

function readRequest(socket: net.Socket): Promise<WalRequest> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 1 << 20) socket.destroy(new Error('request too long'));
    });
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        const request = JSON.parse(text) as WalRequest;
        if (!Array.isArray(request.argv) || !request.argv.every((a) => typeof a === 'string') || typeof request.cwd !== 'string') throw new Error('malformed request');
        resolve(request);
      } catch (error) {
        reject(error as Error);
      }
    });
  });
}

/** Whether a server accepts connections on `socket`. */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = load<typeof net>('node:net').connect(socket);
    probe.on('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
}

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} wal-server: ${message}\n`);
}

function say(code: number, message: string): number {
  log(message);
  return code;
}

/**
 * Builtins this module needs only when it serves or starts a server: it is
 * part of the archive-push bundle, and node:net and node:child_process cost
 * every call several ms to load.
 */
function load<T>(builtin: string): T {
  return createRequire(import.meta.url)(builtin) as T;
}
