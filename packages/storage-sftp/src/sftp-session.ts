import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ConnectConfig, SFTPWrapper } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { ConfigError, HarborError, errorMessage, resolveSecret, type Logger } from '@pgharbor/core';
import { fingerprint, hostName, keyTypeOf, parseKnownHosts, verifyHostKey, type HostKeyVerdict } from './known-hosts.js';
import { isConnectionLost, sftpError } from './sftp-errors.js';
import type { SftpStorageOptions } from './sftp-options.js';

interface Connection {
  client: SftpClient;
  sftp: SFTPWrapper;
  /** Set when the connection closed or failed: the next call opens a new one. */
  lost: boolean;
}

const DEFAULT_CONNECT_TIMEOUT_S = 20;

/**
 * One SSH connection with one SFTP channel, opened on first use and opened
 * again after it drops (server restart, network cut): `run` retries an
 * idempotent operation once on a fresh connection. Every connection
 * verifies the server's host key against known_hosts unless told not to.
 */
export class SftpSession {
  private connection?: Promise<Connection>;
  private closed = false;
  private readonly bySftp = new WeakMap<SFTPWrapper, Connection>();
  private readonly auth: Pick<ConnectConfig, 'privateKey' | 'passphrase' | 'agent'>;
  private readonly knownHostsFiles: string[];

  constructor(
    private readonly options: SftpStorageOptions,
    private readonly context: { logger: Logger; configDir: string; location: string },
  ) {
    this.auth = authentication(options, context.location, context.configDir);
    this.knownHostsFiles = options.known_hosts_file
      ? [options.known_hosts_file]
      : [path.join(os.homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
    if (options.verify_host_key === false) {
      context.logger.warn(
        `sftp repository ${context.location}: host key verification is OFF (verify_host_key: false); ` +
          'a machine in the middle could read or alter backups. Prefer known_hosts_file with the server\'s key.',
      );
    }
  }

  /** The SFTP channel of the live connection, connecting when there is none (or it was lost). */
  async sftp(): Promise<SFTPWrapper> {
    for (;;) {
      if (this.closed) throw new HarborError(`sftp repository ${this.context.location}: the driver is closed`);
      this.connection ??= this.connect();
      const pending = this.connection;
      let connection: Connection;
      try {
        connection = await pending;
      } catch (error) {
        if (this.connection === pending) this.connection = undefined; // the next call tries again
        throw error;
      }
      if (!connection.lost) return connection.sftp;
      if (this.connection === pending) this.connection = undefined;
    }
  }

  /**
   * Run an idempotent operation; when the connection turns out to be dead,
   * reconnect and run it once more.
   */
  async run<T>(operation: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    const sftp = await this.sftp();
    try {
      return await operation(sftp);
    } catch (error) {
      if (!isConnectionLost(error)) throw error;
      this.forget(sftp);
      this.context.logger.debug(`sftp repository ${this.context.location}: connection lost (${errorMessage(error)}), reconnecting`);
      return operation(await this.sftp());
    }
  }

  /** Give up the connection holding `sftp` (an error showed it is dead): the next call reconnects. */
  forget(sftp: SFTPWrapper): void {
    const connection = this.bySftp.get(sftp);
    if (!connection || connection.lost) return;
    connection.lost = true;
    connection.client.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const current = this.connection;
    this.connection = undefined;
    if (!current) return;
    const connection = await current.catch(() => undefined);
    // end() waits for the server's close; a dead connection may never send one.
    await Promise.race([connection?.client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  private async connect(): Promise<Connection> {
    const { host, port = 22, user = os.userInfo().username } = this.options;
    const timeoutMs = (this.options.connect_timeout ?? DEFAULT_CONNECT_TIMEOUT_S) * 1000;
    const sock = await openSocket(host, port, timeoutMs).catch((error: unknown) => {
      throw sftpError(this.context.location, `cannot connect to ${host}:${port}`, error);
    });
    let verdict: { result: HostKeyVerdict; key: Buffer } | undefined;
    const hostVerifier = (key: Buffer): boolean => {
      if (this.options.verify_host_key === false) return true;
      verdict = { result: verifyHostKey(this.readKnownHosts(), host, port, key), key };
      return verdict.result === 'trusted';
    };
    let connection: Connection | undefined;
    const markLost = () => {
      if (connection) connection.lost = true;
    };
    const client = new SftpClient('pgharbor', {
      error: (error: unknown) => {
        this.context.logger.debug(`sftp repository ${this.context.location}: ${errorMessage(error)}`);
        markLost();
      },
      end: markLost,
      close: markLost,
    });
    try {
      const sftp = await client.connect({
        sock,
        host,
        port,
        username: user,
        ...this.auth,
        hostVerifier,
        readyTimeout: timeoutMs,
        // Notice a dead peer within about a minute even when idle.
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
      });
      connection = { client, sftp, lost: false };
      this.bySftp.set(sftp, connection);
      return connection;
    } catch (error) {
      sock.destroy();
      if (verdict && verdict.result !== 'trusted') throw this.hostKeyError(host, port, verdict.result, verdict.key);
      throw sftpError(this.context.location, `cannot log in to ${host}:${port} as ${user}`, error);
    }
  }

  private readKnownHosts() {
    const existing = this.knownHostsFiles.filter((file) => existsSync(file));
    return existing.flatMap((file) => parseKnownHosts(readFileSync(file, 'utf8')));
  }

  private hostKeyError(host: string, port: number, verdict: HostKeyVerdict, key: Buffer): HarborError {
    const name = hostName(host, port);
    const files = this.knownHostsFiles.join(' or ');
    const offered = `${keyTypeOf(key)} ${fingerprint(key)}`;
    const where = `sftp repository ${this.context.location}`;
    if (verdict === 'mismatch' || verdict === 'revoked') {
      return new HarborError(
        `${where}: the host key of ${name} (${offered}) does not match the one in ${files}${verdict === 'revoked' ? ' (it is revoked)' : ''}: refusing to connect`,
        { hint: 'someone may be intercepting the connection, or the server was reinstalled; check the key with the server\'s administrator before updating known_hosts' },
      );
    }
    return new HarborError(`${where}: the host key of ${name} (${offered}) is not in ${files}: refusing to connect`, {
      hint: `verify the fingerprint with the server's administrator, then add it: ssh-keyscan ${port === 22 ? '' : `-p ${port} `}${host} >> ${this.options.known_hosts_file ?? '~/.ssh/known_hosts'}`,
    });
  }
}

/** A TCP connection with Nagle off: without setNoDelay SFTP's small request packets crawl (~2 MB/s). */
function openSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`connection timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.setNoDelay(true);
      resolve(sock);
    });
    sock.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Key file, ssh-agent, or both; the passphrase comes from a secret reference and is registered for redaction. */
function authentication(options: SftpStorageOptions, location: string, configDir: string): Pick<ConnectConfig, 'privateKey' | 'passphrase' | 'agent'> {
  const auth: Pick<ConnectConfig, 'privateKey' | 'passphrase' | 'agent'> = {};
  if (options.private_key_file) {
    try {
      auth.privateKey = readFileSync(options.private_key_file);
    } catch (error) {
      throw new ConfigError(`sftp repository ${location}: cannot read private_key_file ${options.private_key_file}: ${errorMessage(error)}`, 'give the path of the private key (mode 0600)');
    }
    if (options.passphrase) auth.passphrase = resolveSecret(options.passphrase, `sftp repository ${location}: passphrase`, configDir);
  }
  const agent = options.agent === true || (options.agent === undefined && !options.private_key_file) ? process.env.SSH_AUTH_SOCK : options.agent || undefined;
  if (agent) auth.agent = agent;
  if (!auth.privateKey && !auth.agent) {
    throw new ConfigError(
      `sftp repository ${location}: no way to authenticate`,
      options.agent === true ? 'SSH_AUTH_SOCK is not set: start ssh-agent, or give private_key_file' : 'give private_key_file, or agent: true with a running ssh-agent',
    );
  }
  return auth;
}
