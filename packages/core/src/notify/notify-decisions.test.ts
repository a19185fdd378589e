import { describe, expect, it } from 'vitest';
import { eventMatches, sampleEventFor, targetWants } from './notification-target.js';
import { onFailure } from './failure-state.js';
import { retryPauseMs, retryVerdict } from './hook-scripts.js';
import { createEvent } from './events.js';
import { childEnv } from './child-env.js';
import { addSecret } from '../log.js';
import { validateConfig } from '../config/config-validate.js';
import { Registry } from '../registry.js';
import type { StorageFactory } from '../storage/storage-factory.js';
import type { BackupMethod } from '../backup/backup-method.js';
import type { NotifierFactory } from '../notifier.js';

describe('event filters', () => {
  it.each([
    [undefined, 'backup.failed', true],
    [['*'], 'archive.failed', true],
    [['backup.*'], 'backup.failed', true],
    [['backup.*'], 'archive.failed', false],
    [['archive.*'], 'archive.recovered', true],
    [['backup.failed', 'archive.failed'], 'backup.succeeded', false],
    [['backup.failed', 'archive.failed'], 'archive.failed', true],
    [['receive-wal.*'], 'receive-wal.stopped', true],
  ] as const)('on: %j, event %s → %s', (on, event, expected) => {
    expect(eventMatches(on as string[] | undefined, event)).toBe(expected);
  });

  it('servers: limits a target to the servers it names', () => {
    expect(targetWants({ type: 'webhook', servers: ['pga'] }, 'backup.failed', 'pga')).toBe(true);
    expect(targetWants({ type: 'webhook', servers: ['pga'] }, 'backup.failed', 'pgb')).toBe(false);
    expect(targetWants({ type: 'webhook', on: ['archive.*'], servers: ['pga'] }, 'backup.failed', 'pga')).toBe(false);
  });

  it.each([
    [undefined, 'backup.failed'],
    [['archive.recovered', 'archive.failed'], 'archive.recovered'],
    [['archive.*'], 'archive.failed'],
    [['retention.*'], 'retention.expired'],
    [['*'], 'backup.failed'],
  ] as const)('notify-test samples %j with %s', (on, sample) => {
    expect(sampleEventFor({ type: 'x', on: on as string[] | undefined })).toBe(sample);
  });
});

describe('failure state (archive-push, receive-wal)', () => {
  const t0 = new Date('2026-11-25T10:00:00Z');
  const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

  it('notifies the first failure, stays quiet while it lasts, reminds every hour', () => {
    const first = onFailure(undefined, t0);
    expect(first).toMatchObject({ notify: true, state: { since: t0.toISOString(), failures: 1 } });
    const second = onFailure(first.state, at(1));
    expect(second).toMatchObject({ notify: false, state: { failures: 2, notified: t0.toISOString() } });
    const later = onFailure(second.state, at(61));
    expect(later).toMatchObject({ notify: true, state: { failures: 3, since: t0.toISOString(), notified: at(61).toISOString() } });
    expect(onFailure(later.state, at(62)).notify).toBe(false);
  });

  it('a different failure (other checks failing) notifies at once', () => {
    const first = onFailure(undefined, t0, 'wal_level');
    expect(onFailure(first.state, at(1), 'wal_level').notify).toBe(false);
    expect(onFailure(first.state, at(1), 'repository writable, wal_level')).toMatchObject({ notify: true, state: { since: t0.toISOString(), what: 'repository writable, wal_level' } });
  });
});

describe('retry hook scripts (Barman semantics)', () => {
  it.each([
    [{ exitCode: 0 }, 'success'],
    [{ exitCode: 62 }, 'abort-continue'],
    [{ exitCode: 63 }, 'abort-stop'],
    [{ exitCode: 1 }, 'retry'],
    [{ exitCode: 2 }, 'retry'],
    [{ exitCode: undefined, failure: 'killed by SIGKILL' }, 'retry'],
    [{ exitCode: undefined, failure: 'Command failed with ENOENT: /nope' }, 'abort-stop'],
  ] as const)('%j → %s', (run, verdict) => {
    expect(retryVerdict(run)).toBe(verdict);
  });

  it('pauses briefly, and naps 20× longer after every fifth failure', () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((n) => retryPauseMs(n, 3000))).toEqual([3000, 3000, 3000, 3000, 60_000, 3000, 60_000]);
  });
});

describe('events', () => {
  it('carry no secret: every string is redacted, however it got there', () => {
    addSecret('hmac-key-0123456789');
    const event = createEvent('backup.failed', {
      server: 'pga',
      backupId: '20261125T100000',
      error: { message: 'cannot connect (host=pga password=hunter22 user=x) with hmac-key-0123456789', hint: 'see postgresql://u:pw-in-url@h/db' },
    });
    const json = JSON.stringify(event);
    for (const secret of ['hunter22', 'hmac-key-0123456789', 'pw-in-url']) expect(json).not.toContain(secret);
    expect(event).toMatchObject({ event: 'backup.failed', severity: 'error', server: 'pga', host: expect.any(String), id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(event.summary).toMatch(/^backup 20261125T100000 of pga FAILED: cannot connect/);
  });

  it('a test sample says so in its summary', () => {
    expect(createEvent('archive.recovered', { server: 'pga', walFile: '000000010000000000000003', failures: 4, failingSince: 'T', test: true }).summary).toBe(
      '[test] WAL archiving of pga works again (000000010000000000000003 archived after 4 failures since T)',
    );
  });

  it('child processes do not inherit the variables the config names as secrets', () => {
    const env = childEnv({ servers: { pga: { password: { from_env: 'PGA_PW' } } }, notifications: [{ secret: { from_env: 'HOOK_KEY' } }] }, { PATH: '/bin', PGA_PW: 'x', HOOK_KEY: 'y', HOME: '/root' });
    expect(env).toEqual({ PATH: '/bin', HOME: '/root' });
  });
});

describe('notifications config', () => {
  function sources() {
    const storage = new Registry<StorageFactory>('storage type');
    storage.register('posix', { schema: { type: 'object', properties: { path: { type: 'string' } } }, create: () => Promise.reject(new Error('unused')) });
    const methods = new Registry<BackupMethod>('backup method');
    methods.register('basebackup', { run: () => Promise.reject(new Error('unused')) });
    const notifiers = new Registry<NotifierFactory>('notifier type');
    notifiers.register('webhook', { schema: { type: 'object', properties: { url: { type: 'string' } }, required: ['url'] }, create: () => ({ send: async () => {} }) });
    return { storage, methods, notifiers };
  }
  const servers = { pga: { conninfo: 'host=pga', repositories: [{ type: 'posix', path: '/r' }], pre_backup_retry_script: ['/bin/check', '--fast'] } };

  it('accepts targets with filters, and hook scripts in a server section', () => {
    const raw = { servers, notifications: [{ type: 'webhook', url: 'http://x', on: ['backup.failed', 'archive.*'], servers: ['pga'], timeout: 5, retries: 1 }] };
    expect(validateConfig(raw, '/etc/pgharbor/pgharbor.config.yaml', sources()).config.notifications).toHaveLength(1);
  });

  it.each([
    [{ type: 'pager', url: 'x' }, /notifications\[0\]\.type has a value that is not allowed/, /allowed: webhook/],
    [{ type: 'webhook', url: 'x', urll: 'y' }, /notifications\[0\]\.urll is not a known setting/, /allowed here: .*retries.*url/],
    [{ type: 'webhook', url: 'x', on: ['backup.faild'] }, /notifications\[0\]\.on\[0\] has a value that is not allowed/, /backup\.failed/],
    [{ type: 'webhook' }, /notifications\[0\]\.url is missing/, /add it/],
  ])('rejects %j naming the key', (target, message, hint) => {
    let error: { message: string; hint?: string } | undefined;
    try {
      validateConfig({ servers, notifications: [target] }, '/x/pgharbor.config.yaml', sources());
    } catch (e) {
      error = e as typeof error;
    }
    expect(error?.message).toMatch(message);
    expect(error?.hint ?? '').toMatch(hint);
  });

  it('rejects a hook script given as a number', () => {
    expect(() => validateConfig({ servers: { pga: { ...servers.pga, post_backup_script: 5 } } }, '/x/c.yaml', sources())).toThrow(/servers\.pga\.post_backup_script/);
  });
});
