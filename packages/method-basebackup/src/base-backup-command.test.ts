import { describe, expect, it } from 'vitest';
import { baseBackupCommand, parseMaxRate, parseServerCompression, quoteLiteral } from './base-backup-command.js';

describe('BASE_BACKUP command per major', () => {
  it.each<[string, Parameters<typeof baseBackupCommand>[0], string]>([
    [
      '15: option list',
      { versionNum: 150018, label: 'nightly', fastCheckpoint: true },
      "BASE_BACKUP (LABEL 'nightly', CHECKPOINT 'fast', WAL, WAIT false, MANIFEST 'yes', TABLESPACE_MAP)",
    ],
    [
      '17: spread checkpoint, rate, zstd level',
      { versionNum: 170004, label: 'x', fastCheckpoint: false, maxRateKb: 32768, compression: { algorithm: 'zstd', level: 3 } },
      "BASE_BACKUP (LABEL 'x', CHECKPOINT 'spread', WAL, WAIT false, MANIFEST 'yes', TABLESPACE_MAP, MAX_RATE 32768, COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=3')",
    ],
    [
      '17: incremental (after UPLOAD_MANIFEST)',
      { versionNum: 170004, label: 'x', fastCheckpoint: true, incremental: true },
      "BASE_BACKUP (LABEL 'x', CHECKPOINT 'fast', WAL, WAIT false, MANIFEST 'yes', TABLESPACE_MAP, INCREMENTAL)",
    ],
    ['14: keyword syntax', { versionNum: 140013, label: 'x', fastCheckpoint: true, maxRateKb: 100 }, "BASE_BACKUP LABEL 'x' FAST WAL NOWAIT TABLESPACE_MAP MANIFEST 'yes' MAX_RATE 100"],
    ['13: spread checkpoint', { versionNum: 130020, label: 'x', fastCheckpoint: false }, "BASE_BACKUP LABEL 'x' WAL NOWAIT TABLESPACE_MAP MANIFEST 'yes'"],
    ['a label with quotes stays one literal', { versionNum: 150000, label: "a'), WAL ('b", fastCheckpoint: true }, "BASE_BACKUP (LABEL 'a''), WAL (''b', CHECKPOINT 'fast', WAL, WAIT false, MANIFEST 'yes', TABLESPACE_MAP)"],
  ])('%s', (_what, input, expected) => {
    expect(baseBackupCommand(input)).toBe(expected);
  });

  it('refuses server compression before 15, a label with a line break or NUL, or too long', () => {
    expect(() => baseBackupCommand({ versionNum: 140000, label: 'x', fastCheckpoint: true, compression: { algorithm: 'lz4' } })).toThrow(/needs PostgreSQL 15 or later \(the server is 14\)/);
    expect(() => baseBackupCommand({ versionNum: 160000, label: 'x', fastCheckpoint: true, incremental: true })).toThrow(/needs PostgreSQL 17 or later/);
    expect(() => baseBackupCommand({ versionNum: 150000, label: 'a\nb', fastCheckpoint: true })).toThrow(/line break/);
    expect(() => quoteLiteral('a\0b')).toThrow(/NUL/);
    expect(() => baseBackupCommand({ versionNum: 150000, label: 'x'.repeat(1024), fastCheckpoint: true })).toThrow(/at most 1023/);
  });

  it.each<[string, number | RegExp]>([
    ['100', 100],
    ['32k', 32],
    ['2M', 2048],
    ['1024M', 1048576],
    ['31', /outside/],
    ['2048M', /outside/],
    ['1G', /not a rate/],
  ])('max_rate %s', (value, expected) => {
    if (typeof expected === 'number') expect(parseMaxRate(value)).toBe(expected);
    else expect(() => parseMaxRate(value)).toThrow(expected);
  });

  it.each<[string | undefined, unknown]>([
    [undefined, undefined],
    ['none', undefined],
    ['gzip', { algorithm: 'gzip', level: undefined }],
    ['lz4:1', { algorithm: 'lz4', level: 1 }],
    ['zstd:19', { algorithm: 'zstd', level: 19 }],
    ['zstd:22', /outside 1 to 19/],
    ['gzip:0', /outside 1 to 9/],
    ['brotli', /not understood/],
  ])('server_compression %s', (value, expected) => {
    if (expected instanceof RegExp) expect(() => parseServerCompression(value)).toThrow(expected);
    else expect(parseServerCompression(value)).toEqual(expected);
  });
});
