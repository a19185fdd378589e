import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn, walFileBefore, walFileName, isWalSegmentName } from './wal.js';
import { parseBackupLabel } from './backup-label.js';

describe('LSNs and WAL file names', () => {
  it.each([
    ['0/0', 1, '000000010000000000000000'],
    ['0/2000028', 1, '000000010000000000000002'],
    ['0/55000028', 1, '000000010000000000000055'],
    ['1/FF000000', 3, '0000000300000001000000FF'],
    ['2/9000000', 1, '000000010000000200000009'],
  ])('%s on timeline %i is in %s', (lsn, tli, file) => {
    expect(walFileName(tli, lsn)).toBe(file);
  });

  it('an end LSN on a segment boundary belongs to the previous file', () => {
    // Barman's seed: "Backup end at LSN: 0/56000000 (000000010000000000000055, 00000000)"
    expect(walFileBefore(1, '0/56000000')).toBe('000000010000000000000055');
    expect(walFileBefore(1, '0/56000001')).toBe('000000010000000000000056');
  });

  it('round-trips LSNs and rejects garbage', () => {
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
    expect(() => parseLsn('16-B374D848')).toThrow(/invalid LSN/);
    expect(isWalSegmentName('000000010000000000000055')).toBe(true);
    expect(isWalSegmentName('00000002.history')).toBe(false);
  });
});

describe('backup_label', () => {
  it('reads the start position, checkpoint, timeline and time', () => {
    const label = parseBackupLabel(
      [
        'START WAL LOCATION: 0/55000028 (file 000000010000000000000055)',
        'CHECKPOINT LOCATION: 0/55000060',
        'BACKUP METHOD: streamed',
        'BACKUP FROM: primary',
        'START TIME: 2021-10-16 09:28:14 UTC',
        'LABEL: pgharbor backup 20211016T092814',
        'START TIMELINE: 1',
        '',
      ].join('\n'),
    );
    expect(label).toMatchObject({ startLsn: '0/55000028', startWal: '000000010000000000000055', checkpointLsn: '0/55000060', timeline: 1, label: 'pgharbor backup 20211016T092814' });
    expect(label.startTime?.toISOString()).toBe('2021-10-16T09:28:14.000Z');
  });

  it('refuses a file that is not a backup_label', () => {
    expect(() => parseBackupLabel('hello')).toThrow(/START WAL LOCATION/);
  });
});
