import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { describeStorageConformance } from '@pgharbor/core/testing';
import { redact, type Logger } from '@pgharbor/core';
import { startSshd } from '@pgharbor/sandbox';
import plugin, { sftpStorageSchema, type SftpStorageOptions } from './index.js';
import { createSftpStorage, type SftpStorage } from './sftp-storage.js';

const MiB = 1024 * 1024;

const sshd = await startSshd();
// The repositories live on this machine, written through sshd.
const scratch = await mkdtemp(path.join(process.env.PGHARBOR_SANDBOX_DIR ?? tmpdir(), 'pgharbor-sftp-'));
afterAll(async () => {
  await sshd.destroy();
  await rm(scratch, { recursive: true, force: true });
});

interface Captured extends Logger {
  lines: string[];
}
function captureLogger(): Captured {
  const lines: string[] = [];
  const push = (level: string) => (message: string) => void lines.push(`${level}: ${redact(message)}`);
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}

let counter = 0;
function options(extra: Partial<SftpStorageOptions> = {}): SftpStorageOptions {
  return {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    path: path.join(scratch, `repo-${++counter}`),
    private_key_file: sshd.clientKeyFile,
    known_hosts_file: sshd.knownHostsFile,
    ...extra,
  };
}

function open(extra: Partial<SftpStorageOptions> = {}, logger: Logger = captureLogger()): SftpStorage {
  return createSftpStorage(options(extra), { logger, configDir: '/' });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describeStorageConformance('sftp (private sshd)', {
  create: async () => open(),
  destroy: async (driver) => rm((driver as SftpStorage).root, { recursive: true, force: true }),
  // Its own SSH connection to the same directory, as another pgharbor process would have.
  reopen: async (driver) => open({ path: (driver as SftpStorage).root }),
});

describe('sftp storage', () => {
  const drivers: SftpStorage[] = [];
  const track = (driver: SftpStorage) => (drivers.push(driver), driver);
  afterEach(async () => {
    for (const driver of drivers.splice(0)) await driver.close();
  });

  it('creates files 0600 and directories 0700, and leaves no temp files', async () => {
    const driver = track(open());
    await driver.put('a/b/object', 'x');
    await driver.put('a/b/created-only', Readable.from([Buffer.from('y')]), { ifNotExists: true });
    await expect(driver.put('a/b/created-only', 'z', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
    expect((await stat(path.join(driver.root, 'a/b/object'))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(driver.root, 'a/b/created-only'))).mode & 0o777).toBe(0o600);
    for (const dir of ['', 'a', 'a/b']) expect((await stat(path.join(driver.root, dir))).mode & 0o777, `mode of "${dir}"`).toBe(0o700);
    expect((await readdir(path.join(driver.root, 'a/b'))).sort()).toEqual(['created-only', 'object']);
  });

  it('a create-only put that loses the race at the link leaves no temp file', async () => {
    const driver = track(open());
    await driver.put('dir/lock', 'first');
    // Skip the early existence check: only link(2) on the server stands in the way.
    driver.stat = async () => undefined;
    await expect(driver.put('dir/lock', 'second', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
    expect(await readdir(path.join(driver.root, 'dir'))).toEqual(['lock']);
  });

  it('removes directories left empty by delete, but not the root', async () => {
    const driver = track(open());
    await driver.put('a/b/c/object', 'x');
    await driver.put('a/other', 'y');
    await driver.delete('a/b/c/object');
    expect(await readdir(path.join(driver.root, 'a'))).toEqual(['other']);
    await driver.delete('a/other');
    expect(await readdir(driver.root)).toEqual([]);
  });

  it('deletes a prefix with everything in it, temp files of killed writers included', async () => {
    const driver = track(open());
    await driver.put('backups/1/manifest.json', 'x');
    await driver.put('backups/1/sub/bundle', 'y');
    await driver.put('backups/2/manifest.json', 'z');
    await writeFile(path.join(driver.root, 'backups/1/.bundle-000002.dat.tmp-0123456789ab'), 'partial');
    await driver.deletePrefix('backups/1/');
    expect(await readdir(path.join(driver.root, 'backups'))).toEqual(['2']);
    await driver.deletePrefix('backups/2/');
    expect(await readdir(driver.root)).toEqual([]);
    await driver.deletePrefix('never/existed/');
    await expect(driver.deletePrefix('backups')).rejects.toThrow(/must name a directory/);
  });

  it('rejects list prefixes that would leave the root', async () => {
    const driver = track(open());
    const list = async (prefix: string) => {
      for await (const _ of driver.list(prefix)) {
        // drain
      }
    };
    await expect(list('../')).rejects.toThrow(/invalid storage prefix/);
    await expect(list('/etc/')).rejects.toThrow(/invalid storage prefix/);
  });

  describe('host key verification', () => {
    it('refuses a server whose key differs from known_hosts, naming the fingerprint', async () => {
      const driver = track(open({ known_hosts_file: sshd.wrongKnownHostsFile }));
      const error = (await driver.put('x', 'x').catch((e: unknown) => e)) as Error & { hint?: string };
      expect(error.message).toMatch(/the host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:[A-Za-z0-9+/]+\) does not match the one in .*wrong_known_hosts: refusing to connect/);
      expect(error.hint).toMatch(/intercepting/);
    });

    it('refuses a server that is not in known_hosts at all', async () => {
      const empty = path.join(scratch, 'empty_known_hosts');
      await writeFile(empty, '# nothing\n');
      const driver = track(open({ known_hosts_file: empty }));
      const error = (await driver.stat('x').catch((e: unknown) => e)) as Error & { hint?: string };
      expect(error.message).toMatch(/is not in .*empty_known_hosts: refusing to connect/);
      expect(error.hint).toMatch(/ssh-keyscan -p \d+ 127\.0\.0\.1/);
    });

    it('accepts a hashed known_hosts entry', async () => {
      const { createHmac } = await import('node:crypto');
      const salt = randomBytes(20);
      const hash = createHmac('sha1', salt).update(`[127.0.0.1]:${sshd.port}`).digest('base64');
      const hashed = path.join(scratch, 'hashed_known_hosts');
      await writeFile(hashed, `|1|${salt.toString('base64')}|${hash} ${sshd.hostPublicKey}\n`);
      const driver = track(open({ known_hosts_file: hashed }));
      await driver.put('x', 'hashed ok');
      expect((await readAll(await driver.get('x'))).toString()).toBe('hashed ok');
    });

    it('skips verification only when told, with a warning', async () => {
      const logger = captureLogger();
      const driver = track(open({ known_hosts_file: sshd.wrongKnownHostsFile, verify_host_key: false }, logger));
      await driver.put('x', 'unverified');
      expect(logger.lines).toEqual([expect.stringMatching(/^warn: .*host key verification is OFF/)]);
    });
  });

  describe('dropped connections', () => {
    it('reconnect for the next operation after the server drops the session', async () => {
      const driver = track(open());
      await driver.put('before', 'x');
      await sshd.dropConnections();
      await sleep(100);
      expect((await driver.stat('before'))?.size).toBe(1);
      await driver.put('after', Readable.from([Buffer.from('y')]));
      expect((await readAll(await driver.get('after'))).toString()).toBe('y');
    });

    it('a streamed put cut mid-transfer fails cleanly, naming the repository, and leaves nothing visible', async () => {
      const driver = track(open());
      async function* slow() {
        for (let i = 0; i < 40; i++) {
          yield Buffer.alloc(256 * 1024, i);
          if (i === 4) await sshd.dropConnections();
          await sleep(5);
        }
      }
      const error = (await driver.put('cut', Readable.from(slow())).catch((e: unknown) => e)) as Error & { hint?: string };
      expect(error).toBeInstanceOf(Error);
      expect(error.message).toContain(`sftp repository ${driver.location}: cannot write object "cut"`);
      expect(await driver.stat('cut')).toBeUndefined();
      const keys: string[] = [];
      for await (const info of driver.list('')) keys.push(info.key);
      expect(keys).toEqual([]);
      // The temp file is cleaned up over the new connection.
      await sleep(200);
      expect(await readdir(driver.root)).toEqual([]);
    });

    it('a buffered put is retried on a new connection', async () => {
      const driver = track(open());
      await driver.put('warm', 'x');
      await sshd.dropConnections();
      expect(await driver.put('buffered', Buffer.alloc(3 * MiB, 7))).toEqual({ size: 3 * MiB });
      expect((await driver.stat('buffered'))?.size).toBe(3 * MiB);
    });
  });

  it('reports an unreachable server with a hint', async () => {
    const driver = track(open({ port: 1, connect_timeout: 2 }));
    const error = (await driver.stat('x').catch((e: unknown) => e)) as Error & { hint?: string };
    expect(error.message).toMatch(/sftp repository sftp:\/\/.*@127\.0\.0\.1:1\/.*: cannot connect to 127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect(error.hint).toMatch(/cannot be reached/);
  });

  it('reports a refused key with a hint', async () => {
    const other = path.join(sshd.dir, 'other_key'); // a valid key that is not in authorized_keys
    const driver = track(open({ private_key_file: other }));
    const error = (await driver.stat('x').catch((e: unknown) => e)) as Error & { hint?: string };
    expect(error.message).toMatch(/cannot log in to 127\.0\.0\.1:\d+ as /);
    expect(error.hint).toMatch(/authorized_keys/);
  });

  it('requires an absolute path and a way to authenticate', () => {
    expect(() => open({ path: 'relative' })).toThrow(/not absolute/);
    const saved = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      expect(() => open({ private_key_file: undefined })).toThrow(/no way to authenticate/);
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
    }
  });

  it('registers the "sftp" storage type through the plugin', async () => {
    const registered = new Map<string, { schema: unknown; create: (options: unknown, context: unknown) => Promise<SftpStorage> }>();
    plugin.apply({ storage: { register: (type: string, entry: never) => registered.set(type, entry) } } as never);
    expect(registered.get('sftp')?.schema).toBe(sftpStorageSchema);
    const driver = track(await registered.get('sftp')!.create(options(), { logger: captureLogger(), configDir: '/' }));
    expect(driver.type).toBe('sftp');
    expect(driver.location).toMatch(/^sftp:\/\/[^@]+@127\.0\.0\.1:\d+\//);
  });
});
