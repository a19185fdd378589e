import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harbor } from '../harbor.js';
import { silentLogger } from '../log.js';
import type { HarborPlugin } from '../plugin.js';
import type { HarborEvent } from './events.js';
import type { ServerHandle } from '../server-handle.js';

/**
 * The dispatcher maps hooks to events. Here the hooks are fired directly
 * (receive-wal, retention and the archiver raise them in their own
 * processes) and a recording target stands in for the transports, which
 * have their own tests against real servers.
 */
describe('notification dispatcher', () => {
  let dir: string;
  let received: HarborEvent[];
  let down: boolean;
  let harbor: Harbor;

  const recorder: HarborPlugin = {
    name: 'recorder',
    apply(h) {
      h.storage.register('mem', { schema: { type: 'object', properties: {} }, create: () => Promise.reject(new Error('unused')) });
      h.methods.register('basebackup', { run: () => Promise.reject(new Error('unused')) });
      h.notifiers.register('recorder', {
        schema: { type: 'object', properties: {} },
        create: () => ({
          async send(event) {
            if (down) throw new Error('receiver down');
            received.push(event);
          },
        }),
      });
    },
  };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-dispatch-'));
    received = [];
    down = false;
    const config = {
      state_dir: './state',
      servers: { pg: { conninfo: 'host=x', repositories: [{ type: 'mem' }] }, other: { conninfo: 'host=y', repositories: [{ type: 'mem' }] } },
      notifications: [
        { type: 'recorder', name: 'all', retries: 0 },
        { type: 'recorder', name: 'pg-archive', on: ['archive.*'], servers: ['pg'], retries: 0 },
      ],
    };
    harbor = await Harbor.fromConfig({ config: config as never, filepath: path.join(dir, 'pgharbor.config.yaml'), dir }, [recorder], silentLogger);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const events = () => received.map((e) => `${e.event} ${e.server}`);

  it('archive: one archive.failed per outage to each target that wants it, archive.recovered with the count', async () => {
    const pushFailed = (wal: string) => harbor.hooks.archive.pushFailed.promise({ server: 'pg', walFile: wal }, new Error('repository full'));
    await pushFailed('000000010000000000000001');
    await pushFailed('000000010000000000000001');
    await pushFailed('000000010000000000000001');
    expect(events()).toEqual(['archive.failed pg', 'archive.failed pg']);
    await harbor.hooks.archive.pushed.promise({ server: 'pg', walFile: '000000010000000000000001' });
    await harbor.hooks.archive.pushed.promise({ server: 'pg', walFile: '000000010000000000000002' });
    expect(events().slice(2)).toEqual(['archive.recovered pg', 'archive.recovered pg']);
    expect(received[2]).toMatchObject({ failures: 3, failingSince: received[0].failingSince, walFile: '000000010000000000000001', severity: 'info' });
    // server "other" is not in pg-archive's servers: only "all" hears of it
    await harbor.hooks.archive.pushFailed.promise({ server: 'other', walFile: 'x' }, new Error('boom'));
    expect(events().slice(4)).toEqual(['archive.failed other']);
  });

  it('receive-wal: stopped once while it stays down, again after it streamed', async () => {
    const state = (s: 'streaming' | 'stopped' | 'failed', detail?: string) => harbor.hooks.archive.receiverState.promise('pg', s, detail);
    await state('failed', 'connection to server lost');
    await state('starting');
    await state('failed', 'connection to server lost');
    expect(received).toEqual([expect.objectContaining({ event: 'receive-wal.stopped', state: 'failed', error: { message: 'connection to server lost' } })]);
    await state('streaming');
    await state('stopped');
    expect(events()).toEqual(['receive-wal.stopped pg', 'receive-wal.stopped pg']);
  });

  it('retention, restore and check map to their events', async () => {
    await harbor.hooks.retention.expired.promise({ server: 'pg', repository: '/r', subject: '20261101T000000', kind: 'backup', reason: 'REDUNDANCY 2' });
    await harbor.hooks.recovery.failed.promise({ server: 'pg', backupId: 'B', destination: '/d', repository: '/r' }, Object.assign(new Error('disk full'), { hint: 'free space' }));
    const server = { name: 'pg' } as ServerHandle;
    await harbor.hooks.checked.promise(server, [{ name: 'wal_level', ok: false, detail: 'minimal', hint: 'set replica' }, { name: 'PostgreSQL', ok: true }]);
    await harbor.hooks.checked.promise(server, [{ name: 'wal_level', ok: false, detail: 'minimal' }]); // same failure: already said
    expect(received.map((e) => e.summary)).toEqual([
      'backup 20261101T000000 of pg expired (REDUNDANCY 2)',
      'restore of backup B of pg into /d FAILED: disk full',
      'check of pg FAILED: wal_level',
    ]);
    expect(received[1].error).toEqual({ message: 'disk full', hint: 'free space' });
    expect(received[2].checks).toEqual([{ name: 'wal_level', detail: 'minimal', hint: 'set replica' }]);
  });

  it('what a target missed waits in the spool; a flush delivers it once the target is back', async () => {
    down = true;
    await harbor.hooks.recovery.after.promise({ server: 'pg', backupId: 'B', destination: '/d', repository: '/r' }, { files: 3, bytes: 10, seconds: 1 });
    const spool = path.join(dir, 'state', 'spool');
    expect((await readdir(spool)).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    down = false;
    expect(await harbor.notifications.flush()).toEqual({ delivered: 1, pending: 0, dropped: 0 });
    expect(events()).toEqual(['restore.succeeded pg']);
    expect((await readdir(spool)).filter((f) => !f.startsWith('.'))).toEqual([]);
  });
});
