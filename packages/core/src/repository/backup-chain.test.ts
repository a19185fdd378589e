import { describe, expect, it } from 'vitest';
import type { BackupManifest } from './manifest.js';
import { dependentsOf, resolveChain } from './backup-chain.js';

function backup(id: string, extra: Partial<BackupManifest> = {}): BackupManifest {
  return {
    formatVersion: 1, id, server: 's', status: 'DONE', type: extra.parent ? 'incr' : 'full', method: 'basebackup', label: id,
    startTime: '2026-12-01T00:00:00Z', stopTime: '2026-12-01T00:00:01Z', pgVersion: 150000, systemIdentifier: '1', dataDirectory: '/d',
    tablespaces: [], walIncluded: true, files: [], bundles: [], size: 0, storedSize: 0, pgharborVersion: 'x', ...extra,
  };
}

describe('backup chains', () => {
  const full = backup('20261201T000000');
  const diff = backup('20261202T000000', { type: 'diff', parent: full.id });
  const incr = backup('20261203T000000', { parent: diff.id });
  const other = backup('20261204T000000');
  const reusing = backup('20261205T000000', { files: [{ path: 'base/1/1', type: 'file', size: 1, mtime: 0, mode: 0o600, compression: 'none', encryption: 'none', reference: other.id }] });

  it('a chain is every backup it reads from, oldest first', () => {
    expect(resolveChain([full, diff, incr, other], incr.id)).toEqual({ chain: [full, diff] });
    expect(resolveChain([full, other, reusing], reusing.id)).toEqual({ chain: [other] });
    expect(resolveChain([full], full.id)).toEqual({ chain: [] });
  });

  it.each([
    ['a missing parent', [full, incr], /20261202T000000.*not in this repository/],
    ['a FAILED parent', [full, { ...diff, status: 'FAILED' as const }, incr], /20261202T000000.*it is FAILED/],
    ['a parent being deleted', [full, { ...diff, deleting: { operation: 'delete' } }, incr], /it is DELETING/],
    ['a parent newer than its child', [full, { ...diff, parent: incr.id }, incr], /not older|loops/],
    ['a loop', [{ ...full, parent: incr.id }, diff, incr], /loops|not older/],
    ['a parent of another cluster', [full, { ...diff, systemIdentifier: '2' }, incr], /another cluster/],
  ])('refuses %s', (_what, backups, reason) => {
    const { problem } = resolveChain(backups as BackupManifest[], incr.id);
    expect(problem).toBeDefined();
    expect(`${problem!.id}: ${problem!.reason}`).toMatch(reason);
  });

  it('dependents come newest first (the order to delete them in)', () => {
    expect(dependentsOf([full, diff, incr, other, reusing], full.id).map((b) => b.id)).toEqual([incr.id, diff.id]);
    expect(dependentsOf([full, diff, incr, other, reusing], other.id).map((b) => b.id)).toEqual([reusing.id]);
    expect(dependentsOf([full, diff, incr], incr.id)).toEqual([]);
  });
});
