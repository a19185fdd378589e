import { describe, expect, it } from 'vitest';
import type { BackupManifest } from '../repository/manifest.js';
import { chooseBackupType } from './backup-type-choice.js';

const now = new Date('2026-12-08T12:00:00Z');
function backup(id: string, daysAgo: number, extra: Partial<BackupManifest> = {}): BackupManifest {
  const at = new Date(now.getTime() - daysAgo * 86400_000).toISOString();
  return {
    formatVersion: 1, id, server: 's', status: 'DONE', type: 'full', method: 'basebackup', label: id, startTime: at, stopTime: at,
    pgVersion: 150000, systemIdentifier: '1', dataDirectory: '/d', tablespaces: [], walIncluded: true, files: [], bundles: [], size: 0, storedSize: 0,
    pgharborVersion: 'x', ...extra,
  };
}

describe('the type of a backup', () => {
  const week = [backup('20261201T000000', 7.5), backup('20261202T000000', 6, { type: 'incr', parent: '20261201T000000' })];

  it('--type wins; without it the configured type, full by default', () => {
    expect(chooseBackupType('diff', { backup_type: 'incr' }, week, now)).toEqual({ type: 'diff' });
    expect(chooseBackupType(undefined, {}, week, now)).toEqual({ type: 'full' });
    expect(chooseBackupType(undefined, { backup_type: 'incr' }, week, now)).toEqual({ type: 'incr' });
  });

  it('a configured incr becomes a full when there is no full to build on, saying why', () => {
    const choice = chooseBackupType(undefined, { backup_type: 'incr' }, [backup('20261201T000000', 1, { status: 'FAILED' })], now);
    expect(choice.type).toBe('full');
    expect(choice.reason).toMatch(/no full backup to build on/);
  });

  it('full_backup_every: a full once the newest full is older, incrementals between', () => {
    const due = chooseBackupType(undefined, { backup_type: 'incr', full_backup_every: '7 DAYS' }, week, now);
    expect(due).toEqual({ type: 'full', reason: 'the newest full backup, 20261201T000000, is 7 days old, and full_backup_every is 7 DAYS' });
    expect(chooseBackupType(undefined, { backup_type: 'diff', full_backup_every: '8 DAYS' }, week, now)).toEqual({ type: 'diff' });
    expect(chooseBackupType(undefined, { backup_type: 'diff', full_backup_every: '1 WEEK' }, week, now).type).toBe('full');
  });
});
