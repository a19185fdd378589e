import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyReceiverError, lastError } from './receive-wal-traps.js';
import { listSpool, spoolOrder } from './receive-wal-spool.js';
import { nextSegment } from '../postgres/wal.js';

// pg_receivewal 15's words, as receive-wal sees them on stderr.
const forked = `pg_receivewal: starting log streaming at 0/5000000 (timeline 1)
pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  requested starting point 0/5000000 on timeline 1 is not in this server's history
DETAIL:  This server's history forked from timeline 1 at 0/3024A98.
pg_receivewal: error: disconnected`;

describe('classifyReceiverError', () => {
  it('a spool past the point where the server forked: the fork point, for the restart', () => {
    expect(classifyReceiverError(forked)).toEqual({
      kind: 'forked',
      timeline: 1,
      forkLsn: '0/3024A98',
      message: "requested starting point 0/5000000 on timeline 1 is not in this server's history: it forked from timeline 1 at 0/3024A98",
    });
  });

  it('a spool ahead of the server, unknown timelines, removed WAL, a damaged spool file, slot trouble', () => {
    const cases: [string, string][] = [
      ['pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  requested starting point 0/9000000 is ahead of the WAL flush position of this server 0/5000148', 'ahead'],
      ['pg_receivewal: error: starting timeline 3 is not present in the server', 'timeline'],
      ['pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  requested timeline 2 is not in this server\'s history', 'timeline'],
      ['pg_receivewal: error: unexpected termination of replication stream: ERROR:  requested WAL segment 000000010000000000000003 has already been removed', 'removed'],
      ['pg_receivewal: error: write-ahead log file "000000010000000000000005.partial" has 8192 bytes, should be 0 or 16777216', 'bad-spool-file'],
      ['pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  replication slot "pgharbor" does not exist', 'slot-missing'],
      ['pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  replication slot "pgharbor" is active for PID 4242', 'slot-active'],
    ];
    for (const [output, kind] of cases) expect(classifyReceiverError(output)?.kind, output).toBe(kind);
    expect(classifyReceiverError(cases[3][0])).toMatchObject({ segment: '000000010000000000000003', message: 'requested WAL segment 000000010000000000000003 has already been removed' });
  });

  it('ordinary disconnections are no trap; lastError keeps the telling line', () => {
    const output = 'pg_receivewal: error: replication stream was terminated before stop point\npg_receivewal: error: disconnected';
    expect(classifyReceiverError(output)).toBeUndefined();
    expect(lastError(output)).toBe('replication stream was terminated before stop point');
    expect(lastError('pg_receivewal: error: could not connect to server: FATAL:  password authentication failed for user "x"\npg_receivewal: error: disconnected')).toMatch(/^could not connect to server: password authentication failed/);
  });
});

describe('spool helpers', () => {
  it('order by segment, then timeline (as pg_receivewal picks its start), and the next segment', () => {
    const names = ['000000020000000000000004', '000000010000000000000005', '000000010000000000000004'];
    expect([...names].sort(spoolOrder)).toEqual(['000000010000000000000004', '000000020000000000000004', '000000010000000000000005']);
    expect(nextSegment('0000000100000000000000FF', 16 * 1024 * 1024)).toBe('000000010000000100000000');
    expect(nextSegment('000000020000000A00000003', 1024 * 1024 * 1024)).toBe('000000020000000B00000000');
  });

  it('listSpool: history first, partials in order, .tmp leftovers apart, other files ignored', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-spool-'));
    try {
      for (const name of ['000000010000000000000007', '00000002.history', '000000010000000000000008.partial', '000000020000000000000008.partial', '00000003.history.tmp', 'stale', 'notes.txt']) {
        await writeFile(path.join(dir, name), '');
      }
      expect(await listSpool(dir)).toEqual({
        completed: ['00000002.history', '000000010000000000000007'],
        partials: ['000000010000000000000008.partial', '000000020000000000000008.partial'],
        other: ['00000003.history.tmp'],
      });
      expect(await listSpool(path.join(dir, 'missing'))).toEqual({ completed: [], partials: [], other: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
