import { describe, expect, it } from 'vitest';
import { walNeededForRecovery } from './stage-wal.js';

describe('which archived WAL a remote recovery needs', () => {
  const backup = { startWal: '000000020000000000000057', timeline: 2 };
  it.each<[string, boolean]>([
    ['000000020000000000000057', true], // the start segment
    ['000000020000000000000058', true],
    ['000000020000000100000000', true], // a later log file
    ['000000030000000000000059', true], // a later timeline, after a promotion
    ['000000030000000000000059.partial', true],
    ['000000020000000000000058.partial', true],
    ['00000001.history', true], // every history file: recovery_target_timeline = latest reads them
    ['00000003.history', true],
    ['000000020000000000000056', false], // before the backup started
    ['000000010000000000000058', false], // an older timeline
    ['000000020000000000000057.00000028.backup', false],
    ['not-wal', false],
    ['../000000020000000000000058', false], // a listing can name anything: only WAL names are staged
    ['000000020000000000000058/../../x', false],
  ])('%s → %s', (name, needed) => {
    expect(walNeededForRecovery(name, backup)).toBe(needed);
  });

  it('without a known start segment, every segment', () => {
    expect(walNeededForRecovery('000000010000000000000001', {})).toBe(true);
  });
});
