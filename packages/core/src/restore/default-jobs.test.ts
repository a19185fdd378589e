import { describe, expect, it } from 'vitest';
import type { ManifestFile } from '../repository/manifest.js';
import { defaultRestoreJobs } from './run-restore.js';

const file = (compression: string, encryption = 'none'): ManifestFile => ({ path: 'base/1/1', type: 'file', size: 1, mtime: 0, mode: 0o600, compression, encryption });

describe('defaultRestoreJobs', () => {
  it('runs 4 jobs when every file is stored as it is, 2 as soon as one is compressed or encrypted', () => {
    expect(defaultRestoreJobs([file('none'), file('none')])).toBe(4);
    expect(defaultRestoreJobs([file('none'), file('zstd')])).toBe(2);
    expect(defaultRestoreJobs([file('none', 'aes-256-gcm')])).toBe(2);
  });
});
