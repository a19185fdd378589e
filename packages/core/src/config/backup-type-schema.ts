import type { JsonSchema } from './json-schema.js';

/** Server settings choosing the type of a backup when `--type` is not given. */
export const backupTypeServerProperties: Record<string, JsonSchema> = {
  backup_type: {
    enum: ['full', 'diff', 'incr'],
    description: 'type of `pgharbor backup` without --type (default full): diff stores what changed since the newest full, incr what changed since the newest backup',
  },
  full_backup_every: {
    type: 'string',
    pattern: '^\\s*[0-9]+\\s+(HOUR|HOURS|DAY|DAYS|WEEK|WEEKS)\\s*$',
    description: 'with backup_type diff or incr: take a full instead when the newest full backup is older than this, e.g. "7 DAYS"',
  },
};
