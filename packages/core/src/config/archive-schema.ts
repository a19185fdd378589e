import type { JsonSchema } from './json-schema.js';

/** Server settings of WAL archiving (archive-push). */
export const archiveServerProperties: Record<string, JsonSchema> = {
  archive_async: {
    type: 'boolean',
    description: 'true: a background archiver pushes ready segments ahead, in parallel; archive-push then mostly confirms',
  },
  archive_process_max: { type: 'integer', minimum: 1, maximum: 32, description: 'segments the async archiver pushes at once (default 2)' },
  archive_queue_max: {
    type: 'string',
    pattern: '^[0-9]+\\s*(B|kB|KB|MB|GB|TB)?$',
    description: 'WAL waiting in pg_wal beyond which the async archiver raises an alarm, e.g. "4GB" (WAL is never dropped)',
  },
  archive_timeout: { type: 'integer', minimum: 1, description: 'seconds archive-push waits for the async archiver (default 60)' },
  archive_spool_dir: { type: 'string', minLength: 1, format: 'path', description: 'local directory of the async archiver (default <state_dir>/<server>/archive-spool)' },
  archive_server: {
    type: 'boolean',
    description: 'false: no resident WAL server; every archive-push/archive-get call starts and loads pgharbor itself (default true)',
  },
};

/** "4GB" → bytes. */
export function parseSize(text: string): number {
  const match = /^([0-9]+)\s*(B|kB|KB|MB|GB|TB)?$/.exec(text.trim());
  if (!match) throw new Error(`invalid size "${text}"`);
  const unit = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[match[2] ?? 'B']!;
  return Number(match[1]) * unit;
}
