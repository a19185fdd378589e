import { describe, expect, it } from 'vitest';
import type { BackupManifest } from '../repository/manifest.js';
import { decideRetention, walExpires } from './retention-decision.js';
import { parseRetentionPolicy } from './retention-policy.js';

const now = new Date('2026-11-25T12:00:00Z');
const daysAgo = (d: number) => new Date(now.getTime() - d * 86400_000).toISOString();

function backup(id: string, endedDaysAgo: number, extra: Partial<BackupManifest> = {}): BackupManifest {
  const seg = id.slice(-2).padStart(8, '0');
  return {
    formatVersion: 1, id, server: 's', status: 'DONE', type: 'full', method: 'basebackup', label: id,
    startTime: daysAgo(endedDaysAgo), stopTime: daysAgo(endedDaysAgo), pgVersion: 150000, systemIdentifier: '1', dataDirectory: '/d',
    tablespaces: [], walIncluded: true, files: [], bundles: [], size: 0, storedSize: 0, pgharborVersion: 'x',
    startWal: `00000001000000${'00'}${seg}`.slice(0, 24), stopWal: `00000001000000${'00'}${seg}`.slice(0, 24), ...extra,
  };
}

const ids = (m: Map<string, string>, status: string) => [...m].filter(([, s]) => s === status).map(([id]) => id);

describe('retention decisions', () => {
  const four = [backup('20261101T000001', 24), backup('20261108T000002', 17), backup('20261115T000003', 10), backup('20261122T000004', 3)];

  it('REDUNDANCY 3 of four: the oldest is obsolete, with a reason', () => {
    const d = decideRetention(four, parseRetentionPolicy('REDUNDANCY 3'), { now });
    expect(ids(d.status, 'OBSOLETE')).toEqual(['20261101T000001']);
    expect(d.expire).toEqual(['20261101T000001']);
    expect(d.reasons.get('20261101T000001')).toMatch(/REDUNDANCY 3/);
    expect(d.walCutoff).toBe('0000000000000002'); // WAL before the oldest retained backup's start goes
  });

  it('FAILED backups older than every retained backup go too; newer ones stay for inspection', () => {
    const withFailed = [backup('20261031T000000', 25, { status: 'FAILED' }), ...four, backup('20261123T000005', 2, { status: 'FAILED' })];
    const d = decideRetention(withFailed, parseRetentionPolicy('REDUNDANCY 3'), { now });
    expect(d.expire).toEqual(['20261031T000000', '20261101T000001']);
    expect(d.status.get('20261123T000005')).toBe('FAILED');
  });

  it.each([
    ['RECOVERY WINDOW OF 7 DAYS', ['20261101T000001', '20261108T000002']], // 10 days ago is the newest before the window: kept
    ['RECOVERY WINDOW OF 2 WEEKS', ['20261101T000001']],
    ['RECOVERY WINDOW OF 1 MONTHS', []],
    ['RECOVERY WINDOW OF 1 DAYS', ['20261101T000001', '20261108T000002', '20261115T000003']],
  ])('%s expires %j', (policy, expected) => {
    const d = decideRetention(four, parseRetentionPolicy(policy), { now });
    expect(d.expire).toEqual(expected);
  });

  it('keeps the backup just before the window start, and says why', () => {
    const d = decideRetention(four, parseRetentionPolicy('RECOVERY WINDOW OF 7 DAYS'), { now });
    expect(d.status.get('20261115T000003')).toBe('VALID');
    expect(d.reasons.get('20261115T000003')).toMatch(/before the recovery window/);
  });

  it('minimum_redundancy wins over the policy', () => {
    const d = decideRetention(four, parseRetentionPolicy('RECOVERY WINDOW OF 1 DAYS'), { now, minimumRedundancy: 3 });
    expect(d.expire).toEqual(['20261101T000001']);
  });

  it('a kept backup is never obsolete; standalone keeps only its own WAL range', () => {
    const kept = four.map((b, i) => (i === 0 ? { ...b, keep: 'standalone' as const } : b));
    const d = decideRetention(kept, parseRetentionPolicy('REDUNDANCY 1'), { now });
    expect(d.status.get('20261101T000001')).toBe('KEEP:STANDALONE');
    expect(d.expire).toEqual(['20261108T000002', '20261115T000003']);
    expect(d.walCutoff).toBe('0000000000000004');
    expect(walExpires('000000010000000000000001', d)).toBe(false); // the standalone backup's own segment
    expect(walExpires('000000010000000000000002', d)).toBe(true);
    expect(walExpires('000000010000000000000004', d)).toBe(false);
    expect(walExpires('00000002.history', d)).toBe(false);
    const full = decideRetention(four.map((b, i) => (i === 0 ? { ...b, keep: 'full' as const } : b)), parseRetentionPolicy('REDUNDANCY 1'), { now });
    expect(full.status.get('20261101T000001')).toBe('KEEP:FULL');
    expect(full.walCutoff).toBe('0000000000000001'); // a full keep holds all the WAL after it
  });

  it('a retained incremental keeps the backups it depends on', () => {
    const chain = [
      ...four.slice(0, 3),
      backup('20261122T000004', 3, { type: 'incr', parent: '20261101T000001', files: [{ path: 'base/1/1', type: 'file', size: 1, mtime: 0, mode: 0o600, compression: 'none', encryption: 'none', reference: '20261101T000001' }] }),
    ];
    const d = decideRetention(chain, parseRetentionPolicy('REDUNDANCY 1'), { now });
    expect(d.status.get('20261101T000001')).toBe('VALID');
    expect(d.reasons.get('20261101T000001')).toMatch(/needed by retained backup 20261122T000004/);
    expect(d.status.get('20261115T000003')).toBe('VALID'); // the newest full
    expect(d.expire).toEqual(['20261108T000002']);
  });

  it('REDUNDANCY counts full backups: a chain of full, diff and incrementals counts once', () => {
    const f = (id: string, ago: number) => backup(id, ago);
    const on = (id: string, ago: number, type: 'incr' | 'diff', parent: string) => backup(id, ago, { type, parent });
    const chains = [
      f('20261101T000001', 24), on('20261102T000002', 23, 'incr', '20261101T000001'), on('20261103T000003', 22, 'incr', '20261102T000002'),
      f('20261108T000004', 17), on('20261109T000005', 16, 'diff', '20261108T000004'), on('20261110T000006', 15, 'incr', '20261109T000005'),
      f('20261115T000007', 10), on('20261116T000008', 9, 'incr', '20261115T000007'),
    ];
    const two = decideRetention(chains, parseRetentionPolicy('REDUNDANCY 2'), { now });
    expect(two.expire).toEqual(['20261101T000001', '20261102T000002', '20261103T000003']);
    expect(two.reasons.get('20261101T000001')).toBe('2 newer full backups, and REDUNDANCY 2 keeps the 2 newest with the backups built on them');
    expect(two.walCutoffFile).toBe(chains[3].startWal); // WAL from the oldest retained full on
    const one = decideRetention(chains, parseRetentionPolicy('REDUNDANCY 1'), { now });
    expect(one.expire).toEqual(chains.slice(0, 6).map((b) => b.id));
    expect(one.status.get('20261116T000008')).toBe('VALID');
    // A window that starts inside a chain keeps the chain's earlier links: the incremental just before it needs them.
    const window = decideRetention(chains, parseRetentionPolicy('RECOVERY WINDOW OF 10 DAYS'), { now: new Date(now.getTime() - 5.5 * 86400_000) });
    expect(window.status.get('20261110T000006')).toBe('VALID');
    expect(window.status.get('20261108T000004')).toBe('VALID');
    expect(window.reasons.get('20261108T000004')).toMatch(/needed by retained backup 20261109T000005/);
    expect(window.expire).toEqual(['20261101T000001', '20261102T000002', '20261103T000003']);
  });

  it('rejects a policy it cannot read, with the forms it accepts', () => {
    expect(() => parseRetentionPolicy('KEEP 3')).toThrow(/not a retention policy/);
    expect(() => parseRetentionPolicy('REDUNDANCY 0')).toThrow(/at least 1/);
  });
});
