import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BackupManifest } from '@pgharbor/core';
import { incrementalManifest } from './incremental-manifest.js';

const parent = {
  id: '20261208T010000',
  systemIdentifier: '7450000000000000001',
  startLsn: '0/2000028',
  stopLsn: '0/2000138',
  timeline: 1,
  files: [
    { path: 'base/5/16384', type: 'file', size: 16384, mtime: 1765155600 },
    { path: 'base/5', type: 'directory', size: 0, mtime: 1765155600 },
    { path: 'dir with "quote"/x', type: 'file', size: 3, mtime: 1765155600 },
  ],
} as unknown as BackupManifest;

describe('the manifest uploaded for an incremental backup', () => {
  it('is a version 2 manifest of the parent whose checksum covers every byte before it', () => {
    const text = incrementalManifest(parent).toString();
    const json = JSON.parse(text) as Record<string, unknown>;
    expect(json['PostgreSQL-Backup-Manifest-Version']).toBe(2);
    expect(text).toContain('"System-Identifier": 7450000000000000001,'); // a bare uint64: JSON.parse would round it
    expect(json.Files).toEqual([
      { Path: 'base/5/16384', Size: 16384, 'Last-Modified': '2025-12-08 01:00:00 GMT' },
      { Path: 'dir with "quote"/x', Size: 3, 'Last-Modified': '2025-12-08 01:00:00 GMT' },
    ]);
    expect(json['WAL-Ranges']).toEqual([{ Timeline: 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000138' }]);
    const at = text.indexOf('"Manifest-Checksum"');
    expect(json['Manifest-Checksum']).toBe(createHash('sha256').update(text.slice(0, at)).digest('hex'));
  });

  it('refuses a parent without what the server needs', () => {
    expect(() => incrementalManifest({ ...parent, stopLsn: undefined })).toThrow(/no start\/stop LSN/);
    expect(() => incrementalManifest({ ...parent, systemIdentifier: '1, "x": 2' })).toThrow(/system identifier/);
  });
});
