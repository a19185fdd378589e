import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { freePort } from './free-port.js';
import { track, untrack } from './reaper.js';

export interface SandboxSshdOptions {
  /** Parent directory for keys and config (default env PGHARBOR_SANDBOX_DIR, else os.tmpdir()). */
  rootDir?: string;
  /** Extra sshd_config lines. */
  config?: string[];
  /**
   * The OS user clients log in as (default: whoever runs the tests). When
   * root runs the tests and this is another user, sshd runs as that user:
   * it can then only admit that user, but it admits it even when the
   * account is locked for passwords (as Debian's `postgres` is), which
   * root's sshd without PAM refuses. Its directory is handed to that user.
   */
  loginUser?: { uid: number; gid: number; name: string };
}

export interface SandboxSshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The OS user the client logs in as: whoever runs the tests, or `loginUser`. */
  readonly user: string;
  /** The client's private key (ed25519, no passphrase, mode 0600). */
  readonly clientKeyFile: string;
  /** A known_hosts file with this server's host key for "[127.0.0.1]:port". */
  readonly knownHostsFile: string;
  /** The server's host public key line ("ssh-ed25519 AAAA…"). */
  readonly hostPublicKey: string;
  /** A known_hosts file that names this host with a *different* key, to test refusal. */
  readonly wrongKnownHostsFile: string;
  /** Directory holding the keys and config; removed by destroy(). */
  readonly dir: string;
  /** Kill every open session (sshd's per-connection children): clients see a dropped connection. */
  dropConnections(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';
const READY_TIMEOUT_MS = 10_000;

/**
 * A private OpenSSH server on 127.0.0.1 and a free port, with its own host
 * key, a client key in authorized_keys and a known_hosts line for the
 * client: real SSH and SFTP for tests, without touching the system sshd.
 */
export async function startSshd(options: SandboxSshdOptions = {}): Promise<SandboxSshd> {
  const root = options.rootDir ?? process.env.PGHARBOR_SANDBOX_DIR ?? os.tmpdir();
  const dir = await mkdtemp(path.join(root, 'pgharbor-sshd-'));
  try {
    return await setUp(dir, options);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function setUp(dir: string, options: SandboxSshdOptions): Promise<SandboxSshd> {
  const file = (name: string) => path.join(dir, name);
  await Promise.all([keygen(file('host_key')), keygen(file('client_key')), keygen(file('other_key'))]);
  const hostPublicKey = publicKeyOf(await readFile(file('host_key.pub'), 'utf8'));
  await writeFile(file('authorized_keys'), await readFile(file('client_key.pub'), 'utf8'), { mode: 0o600 });
  const runAs = options.loginUser && process.getuid?.() === 0 && options.loginUser.uid !== 0 ? options.loginUser : undefined;
  // sshd as root needs its privilege separation directory.
  if (process.getuid?.() === 0 && !runAs) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  if (runAs) await execa('chown', ['-R', `${runAs.uid}:${runAs.gid}`, dir]);

  let port = 0;
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const candidate = port || (await freePort());
      await writeFile(file('sshd_config'), sshdConfig(dir, candidate, options.config ?? []));
      try {
        child = await spawnSshd(file('sshd_config'), runAs);
        port = candidate;
        return;
      } catch (error) {
        if (!/Address already in use/.test(String(error)) || attempt >= 5) throw error;
      }
    }
  };
  await launch();
  const known = (key: string) => `[127.0.0.1]:${port} ${key}\n`;
  await writeFile(file('known_hosts'), known(hostPublicKey), { mode: 0o600 });
  await writeFile(file('wrong_known_hosts'), known(publicKeyOf(await readFile(file('other_key.pub'), 'utf8'))), { mode: 0o600 });
  if (runAs) await execa('chown', [`${runAs.uid}:${runAs.gid}`, file('known_hosts'), file('wrong_known_hosts')]);

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
    if (running.pid) untrack(running.pid);
  };

  return {
    host: '127.0.0.1',
    port,
    user: options.loginUser?.name ?? os.userInfo().username,
    clientKeyFile: file('client_key'),
    knownHostsFile: file('known_hosts'),
    wrongKnownHostsFile: file('wrong_known_hosts'),
    hostPublicKey,
    dir,
    async dropConnections() {
      if (!child?.pid) return;
      // The listener forks a monitor per connection, which forks the session
      // (sshd privilege separation); both hold the socket. Kill every
      // descendant of the listener, and only those.
      for (const pid of await descendants(child.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
    stop,
    start: async () => {
      if (!child) await launch();
    },
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function sshdConfig(dir: string, port: number, extra: string[]): string {
  return [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${path.join(dir, 'host_key')}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    // Keys live in a temp directory that sshd's ownership checks would reject.
    'StrictModes no',
    'UsePAM no',
    'Subsystem sftp internal-sftp',
    // Tests open many sessions at once (parallel drivers, reconnects).
    'MaxStartups 100',
    'MaxSessions 100',
    // INFO: the "Server listening" line tells us when it is ready.
    'LogLevel INFO',
    ...extra,
    '',
  ].join('\n');
}

/** Start `sshd -D -e` and resolve once it logs that it listens. */
async function spawnSshd(configFile: string, runAs?: { uid: number; gid: number }): Promise<ChildProcess> {
  const child = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'], ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) });
  if (child.pid) track(child.pid);
  let stderr = '';
  let ready!: () => void;
  const listening = new Promise<void>((resolve) => (ready = resolve));
  // Keep draining stderr for the server's whole life: a full pipe would block sshd.
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8192);
    if (/Server listening on 127\.0\.0\.1 port/.test(stderr)) ready();
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`sshd exited (code ${code}): ${stderr.trim()}`))),
  );
  const failedToSpawn = new Promise<never>((_, reject) => child.once('error', reject));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`sshd did not start within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`)), READY_TIMEOUT_MS);
  });
  try {
    await Promise.race([listening, exited, failedToSpawn, timeout]);
  } catch (error) {
    child.kill('SIGKILL');
    if (child.pid) untrack(child.pid);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  exited.catch(() => {});
  failedToSpawn.catch(() => {});
  return child;
}

/** Every process below `root`, from `ps` (children first found, then theirs). */
async function descendants(root: number): Promise<number[]> {
  const { stdout } = await execa('ps', ['-e', '-o', 'pid=,ppid='], { reject: false });
  const children = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (!pid || !ppid) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const found: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    for (const pid of children.get(queue.shift()!) ?? []) {
      found.push(pid);
      queue.push(pid);
    }
  }
  return found;
}

async function keygen(keyFile: string): Promise<void> {
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pgharbor-sandbox', '-f', keyFile]);
}

/** "ssh-ed25519 AAAA… comment" → "ssh-ed25519 AAAA…" */
function publicKeyOf(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(' ');
}
