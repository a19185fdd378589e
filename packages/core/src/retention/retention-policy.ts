import { ConfigError } from '../errors.js';

/**
 * Barman's retention policies:
 *   REDUNDANCY n                          keep the n newest backups
 *   RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS keep what is needed to recover to any point of the last n …
 */
export type RetentionPolicy = { kind: 'redundancy'; count: number } | { kind: 'window'; amount: number; unit: 'days' | 'weeks' | 'months'; text: string };

export function parseRetentionPolicy(text: string, where = 'retention'): RetentionPolicy {
  const redundancy = /^\s*REDUNDANCY\s+(\d+)\s*$/i.exec(text);
  if (redundancy) {
    const count = Number(redundancy[1]);
    if (count < 1) throw new ConfigError(`${where}: REDUNDANCY must be at least 1`, 'e.g. REDUNDANCY 3');
    return { kind: 'redundancy', count };
  }
  const window = /^\s*RECOVERY\s+WINDOW\s+OF\s+(\d+)\s+(DAY|DAYS|WEEK|WEEKS|MONTH|MONTHS)\s*$/i.exec(text);
  if (window) {
    const amount = Number(window[1]);
    if (amount < 1) throw new ConfigError(`${where}: the recovery window must be at least 1`, 'e.g. RECOVERY WINDOW OF 7 DAYS');
    const unit = window[2].toLowerCase().replace(/s?$/, 's') as 'days' | 'weeks' | 'months';
    return { kind: 'window', amount, unit, text: `RECOVERY WINDOW OF ${amount} ${unit.toUpperCase()}` };
  }
  throw new ConfigError(`${where}: "${text}" is not a retention policy`, 'write REDUNDANCY n or RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS');
}

export function describePolicy(policy: RetentionPolicy | undefined): string {
  if (!policy) return 'not enforced';
  return policy.kind === 'redundancy' ? `REDUNDANCY ${policy.count}` : policy.text;
}

/** The start of the recovery window: the earliest point that must stay reachable. */
export function windowStart(policy: Extract<RetentionPolicy, { kind: 'window' }>, now: Date): Date {
  const start = new Date(now);
  if (policy.unit === 'days') start.setUTCDate(start.getUTCDate() - policy.amount);
  else if (policy.unit === 'weeks') start.setUTCDate(start.getUTCDate() - 7 * policy.amount);
  else start.setUTCMonth(start.getUTCMonth() - policy.amount);
  return start;
}
