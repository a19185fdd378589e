import { describe, expect, it } from 'vitest';
import { Registry } from '../registry.js';
import type { StorageFactory } from '../storage/storage-factory.js';
import type { BackupMethod } from '../backup/backup-method.js';
import { validateConfig } from './config-validate.js';
import { redact, addSecret } from '../log.js';
import { resolveSecret } from './secrets.js';

function sources() {
  const storage = new Registry<StorageFactory>('storage type');
  storage.register('posix', {
    schema: { type: 'object', properties: { path: { type: 'string', format: 'path' } }, required: ['path'] },
    create: () => {
      throw new Error('not used');
    },
  });
  const methods = new Registry<BackupMethod>('backup method');
  methods.register('basebackup', { serverOptions: { immediate_checkpoint: { type: 'boolean' } }, run: async () => { throw new Error('not used'); } });
  return { storage, methods };
}

const base = () => ({
  servers: { pga: { conninfo: 'host=pga', repositories: [{ type: 'posix', path: 'repo' }] } },
});

describe('config validation', () => {
  it('accepts a good config, applies defaults and resolves relative paths against the config file', () => {
    const raw = { defaults: { immediate_checkpoint: true }, ...base() };
    const { config } = validateConfig(raw, '/etc/pgharbor/pgharbor.config.yaml', sources());
    expect(config.servers.pga).toMatchObject({ method: 'basebackup', immediate_checkpoint: true, repositories: [{ type: 'posix', path: '/etc/pgharbor/repo' }] });
  });

  it.each([
    [{ servers: { pga: { ...base().servers.pga, conninfoo: 'x' } } }, /servers\.pga\.conninfoo is not a known setting/, /allowed here: .*conninfo.*immediate_checkpoint/],
    [{ servers: { pga: { conninfo: 'x', repositories: [{ type: 'posix', pth: '/x' }] } } }, /servers\.pga\.repositories\[0\]\.pth is not a known setting/, /allowed here: path/],
    [{ servers: { pga: { ...base().servers.pga, immediate_checkpoint: 'yes' } } }, /servers\.pga\.immediate_checkpoint must be boolean/, /.*/],
    [{ servers: { pga: { conninfo: 'x', repositories: [{ type: 'nfs' }] } } }, /repositories\[0\]\.type "nfs" is not a known storage type/, /allowed: posix/],
    [{ servers: { pga: { ...base().servers.pga, method: 'rsync' } } }, /servers\.pga\.method "rsync" is not a known backup method/, /allowed: basebackup/],
    [{ servers: { pga: { repositories: [{ type: 'posix', path: '/x' }] } } }, /servers\.pga\.conninfo is missing/, /libpq connection string/],
    [{ servers: {} }, /servers must NOT have fewer than 1 properties/, /.*/],
    [{ serverz: {} }, /serverz is not a known setting/, /allowed here: defaults, .*plugins, servers/],
    [{ servers: { pga: { ...base().servers.pga, password: 'plain-text' } } }, /servers\.pga\.password must be object/, /from_env/],
  ])('rejects %j with a message naming the key', (raw, message, hint) => {
    let error: { message: string; hint?: string; exitCode: number } | undefined;
    try {
      validateConfig(raw, '/x/pgharbor.config.yaml', sources());
    } catch (e) {
      error = e as typeof error;
    }
    expect(error?.message).toMatch(/^\/x\/pgharbor\.config\.yaml: /);
    expect(error?.message).toMatch(message);
    expect(error?.hint ?? '').toMatch(hint);
    expect(error?.exitCode).toBe(2);
  });
});

describe('secrets', () => {
  it('come from the environment and are redacted from every log line', () => {
    process.env.PGH_UNIT_SECRET = 'correct-horse-battery';
    expect(resolveSecret({ from_env: 'PGH_UNIT_SECRET' }, 'x', '/')).toBe('correct-horse-battery');
    expect(redact('connecting with correct-horse-battery now')).toBe('connecting with <redacted> now');
  });

  it('redact passwords in conninfo strings and URLs even when not registered', () => {
    expect(redact("host=a password=hunter22 user=b")).toBe('host=a password=<redacted> user=b');
    expect(redact("host=a password='x y z' user=b")).toBe('host=a password=<redacted> user=b');
    expect(redact('postgresql://u:s3cr3t@h/db')).toBe('postgresql://u:<redacted>@h/db');
    addSecret('ab'); // too short to be a real secret: not redacted, or every "ab" would vanish
    expect(redact('abc')).toBe('abc');
  });

  it('a missing variable is a config error that names it', () => {
    delete process.env.PGH_UNIT_MISSING;
    expect(() => resolveSecret({ from_env: 'PGH_UNIT_MISSING' }, 'servers.pga.password', '/')).toThrow(/servers\.pga\.password: environment variable PGH_UNIT_MISSING is not set/);
  });
});
