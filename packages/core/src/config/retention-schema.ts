import type { JsonSchema } from './json-schema.js';

const policy: JsonSchema = {
  type: 'string',
  pattern: '^\\s*(REDUNDANCY\\s+[0-9]+|RECOVERY\\s+WINDOW\\s+OF\\s+[0-9]+\\s+(DAY|DAYS|WEEK|WEEKS|MONTH|MONTHS))\\s*$',
  description: '"REDUNDANCY n" or "RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS"',
};

/** Server settings of retention (Barman's names). */
export const retentionServerProperties: Record<string, JsonSchema> = {
  retention: policy,
  minimum_redundancy: { type: 'integer', minimum: 0, description: 'never keep fewer DONE backups than this, whatever the policy' },
  retention_policy_mode: { enum: ['auto', 'manual'], description: 'auto: expire after each backup and in cron; manual: only `pgharbor expire`' },
  last_backup_maximum_age: {
    type: 'string',
    pattern: '^\\s*[0-9]+\\s+(HOUR|HOURS|DAY|DAYS|WEEK|WEEKS)\\s*$',
    description: 'check fails when the newest DONE backup is older, e.g. "1 DAYS"',
  },
};

/** A repository entry may override the server's policy (pgBackRest's repoN-retention-full). */
export const retentionRepositoryProperties: Record<string, JsonSchema> = {
  retention: policy,
};
