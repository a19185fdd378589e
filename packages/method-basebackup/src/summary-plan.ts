import type pg from 'pg';
import { errorMessage, type MethodContext } from '@pgharbor/core';
import { incrementalManifest } from './incremental-manifest.js';

/** Whether this backup asks the server for an incremental from its WAL summaries, and if not, why (undefined: a full, nothing to say). */
export type SummaryPlan = { use: true; manifest: Buffer } | { use: false; reason?: string };

/**
 * PostgreSQL 17+ with `summarize_wal = on` sends only the blocks changed
 * since the parent (BASE_BACKUP INCREMENTAL after UPLOAD_MANIFEST). What is
 * checked here is what pgharbor can see beforehand; the server checks the
 * rest (summaries covering the range) and its refusal falls back too.
 */
export async function summaryPlan(client: pg.Client, context: MethodContext, major: number, timeline: number): Promise<SummaryPlan> {
  const parent = context.parent;
  if (context.type === 'full' || !parent) return { use: false };
  if (major < 17) return { use: false, reason: `PostgreSQL ${major} keeps no WAL summaries (17 and later do)` };
  const setting = await client.query<{ summarize_wal: string }>('SHOW summarize_wal');
  if (setting.rows[0]?.summarize_wal !== 'on') return { use: false, reason: 'summarize_wal is off on the server (set summarize_wal = on to send only changed blocks)' };
  if (parent.timeline !== timeline) return { use: false, reason: `the parent ${parent.id} is on timeline ${parent.timeline}, the server on ${timeline}` };
  try {
    return { use: true, manifest: incrementalManifest(parent) };
  } catch (error) {
    return { use: false, reason: errorMessage(error) };
  }
}

/** backup_label as pg_combinebackup writes it: without the INCREMENTAL FROM lines a server refuses to start from. */
export function withoutIncrementalLines(label: Buffer): Buffer {
  const text = label.toString('utf8');
  return Buffer.from(
    text
      .split('\n')
      .filter((line) => !line.startsWith('INCREMENTAL FROM '))
      .join('\n'),
  );
}
