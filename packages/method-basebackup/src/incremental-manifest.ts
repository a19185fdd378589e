import { createHash } from 'node:crypto';
import { formatLsn, parseLsn, type BackupManifest } from '@pgharbor/core';

/**
 * The backup_manifest pgharbor uploads (UPLOAD_MANIFEST) before
 * `BASE_BACKUP (INCREMENTAL)`, made from the parent's pgharbor manifest so
 * that any pgharbor backup of the cluster can be the parent, not only one
 * the server described itself. What the server reads of it
 * (src/backend/backup/basebackup_incremental.c): version 2 (version 1 is
 * refused), the System-Identifier (checked against its own), the files'
 * paths and sizes (a relation file absent from the list is sent whole),
 * the WAL ranges (where its WAL summaries must start: the parent's start
 * LSN on its timeline) and the Manifest-Checksum, sha256 of every byte
 * before that line. Files carry no checksum: the server does not use them.
 */
export function incrementalManifest(parent: BackupManifest): Buffer {
  if (!/^[0-9]{1,20}$/.test(parent.systemIdentifier)) throw new Error(`parent ${parent.id} has system identifier ${JSON.stringify(parent.systemIdentifier)}`);
  if (!parent.startLsn || !parent.stopLsn || !parent.timeline) throw new Error(`parent ${parent.id} records no start/stop LSN and timeline`);
  const lines: string[] = ['{ "PostgreSQL-Backup-Manifest-Version": 2,', `"System-Identifier": ${parent.systemIdentifier},`, '"Files": ['];
  const files = parent.files.filter((file) => file.type === 'file');
  files.forEach((file, i) => {
    const mtime = new Date(file.mtime ? file.mtime * 1000 : 0).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' GMT');
    lines.push(`{ "Path": ${JSON.stringify(file.path)}, "Size": ${file.size}, "Last-Modified": "${mtime}" }${i < files.length - 1 ? ',' : ''}`);
  });
  lines.push('],', '"WAL-Ranges": [', `{ "Timeline": ${parent.timeline}, "Start-LSN": "${formatLsn(parseLsn(parent.startLsn))}", "End-LSN": "${formatLsn(parseLsn(parent.stopLsn))}" }`, '],');
  const body = lines.join('\n') + '\n';
  const checksum = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`${body}"Manifest-Checksum": "${checksum}"}\n`);
}
