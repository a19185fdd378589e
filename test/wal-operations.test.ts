import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { createWorkspace, waitFor, type Workspace } from './harness.js';

describe('check, switch-wal and replication-status on an archiving server', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
  });
  afterAll(async () => ws?.cleanup());

  it('check says WAL archive FAILED until a segment arrives, and switch-wal --force --archive fixes it (the seed)', async () => {
    const before = await ws.run(['check', 'pg']);
    expect(before.stdout).toMatch(/WAL archive: FAILED \(no WAL archived yet\)/);
    expect(before.stdout).toMatch(/HINT: please make sure WAL shipping is set up/);
    expect(before.exitCode).toBe(1);

    const idle = await ws.run(['switch-wal', 'pg']);
    expect(idle.exitCode).toBe(0);
    const forced = await ws.run(['switch-wal', 'pg', '--force', '--archive']);
    expect(forced.stderr).toBe('');
    expect(forced.exitCode).toBe(0);
    expect(forced.stdout).toMatch(/The WAL file [0-9A-F]{24} has been closed on server 'pg'/);
    expect(forced.stdout).toMatch(/[0-9A-F]{24} is archived/);

    const after = await ws.run(['check', 'pg']);
    expect(after.stdout).toMatch(/WAL archive: OK/);
    expect(after.stdout).toMatch(/archiver errors: OK/);
    expect(after.stdout).toMatch(/archive_mode: OK/);
    expect(after.exitCode).toBe(0);
  });

  it('switch-wal without --force on an idle server says no switch was needed', async () => {
    // An idle server still writes a little WAL now and then (running-xacts records): retry a few times.
    let said = '';
    for (let i = 0; i < 4 && !said.includes('No switch required'); i++) said = (await ws.run(['switch-wal', 'pg'])).stdout;
    expect(said).toContain("No switch required for server 'pg'");
  });

  it('a standby restored with --standby streams from the primary and replication-status shows it', async () => {
    expect((await ws.run(['backup', 'pg'])).exitCode).toBe(0);
    const target = await ws.restoreTarget('standby1');
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--standby']);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.stdout).toContain('primary_conninfo');
    expect(existsSync(path.join(target, 'standby.signal'))).toBe(true);
    const standby = await ws.startRestored(target);
    await ws.cluster.query('CREATE TABLE replicated (v int)');
    await ws.cluster.query('INSERT INTO replicated VALUES (42)');
    await waitFor('the row on the standby', async () => {
      const rows = await standby.query<{ v: number }>('SELECT v FROM replicated');
      return rows.length === 1 ? rows : undefined;
    });
    const [{ r }] = await standby.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    expect(r).toBe(true);

    const status = JSON.parse((await ws.run(['--json', 'replication-status', 'pg'])).stdout);
    expect(status.clients).toEqual(expect.arrayContaining([expect.objectContaining({ applicationName: 'standby1', state: 'streaming' })]));
    const text = await ws.run(['replication-status', 'pg']);
    expect(text.stdout).toMatch(/Number of streaming clients: 1/);
    expect(text.stdout).toMatch(/Application name: standby1/);
    await standby.stop();
  });
});

describe('check on a server that does not archive', () => {
  let ws: Workspace;
  beforeAll(async () => {
    ws = await createWorkspace();
  });
  afterAll(async () => ws?.cleanup());

  it('says archive_mode is off and what point-in-time recovery would need, without failing', async () => {
    const result = await ws.run(['check', 'pg']);
    expect(result.stdout).toMatch(/archive_mode: OK \(off: backups restore on their own, but point-in-time recovery needs archive_mode = on with archive_command = 'pgharbor archive-push SERVER %p'/);
    expect(result.stdout).not.toMatch(/WAL archive/);
    expect(result.exitCode).toBe(0);
  });
});
