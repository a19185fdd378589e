import type { CheckContext } from '../check/check-context.js';
import { HarborError } from '../errors.js';
import { displayStatus } from '../repository/backup-status.js';
import { policyFor } from './expire.js';
import { describePolicy } from './retention-policy.js';

/** `check` lines for retention, as Barman names them. */
export async function retentionChecks(context: CheckContext): Promise<void> {
  const { server } = context;
  for (const repository of await server.repositories()) {
    const label = server.config.repositories.length > 1 ? ` (${repository.name})` : '';
    await context.run(`retention policy settings${label}`, async () => {
      try {
        return { ok: true, detail: describePolicy(policyFor(server, repository)) };
      } catch (error) {
        return { ok: false, detail: (error as Error).message, hint: error instanceof HarborError ? error.hint : undefined };
      }
    });
    let manifests;
    try {
      manifests = await repository.listManifests();
    } catch (error) {
      // A manifest that cannot be read (refused, or no key to open it) fails this line, not the whole check.
      context.report({ name: `minimum redundancy requirements${label}`, ok: false, detail: (error as Error).message, hint: error instanceof HarborError ? error.hint : undefined });
      continue;
    }
    const done = manifests.filter((m) => displayStatus(m) === 'DONE');
    const minimum = (server.config.minimum_redundancy as number | undefined) ?? 0;
    context.report({
      name: `minimum redundancy requirements${label}`,
      ok: done.length >= minimum,
      detail: `have ${done.length} backups, expected at least ${minimum}`,
      hint: done.length >= minimum ? undefined : `take a backup: pgharbor backup ${server.name}`,
    });
    const maxAge = server.config.last_backup_maximum_age as string | undefined;
    if (!maxAge) {
      context.report({ name: `backup maximum age${label}`, ok: true, detail: 'no last_backup_maximum_age provided' });
    } else {
      const seconds = parseAge(maxAge);
      const newest = done.at(-1);
      const age = newest ? (Date.now() - Date.parse(newest.stopTime ?? newest.startTime)) / 1000 : Infinity;
      context.report({
        name: `backup maximum age${label}`,
        ok: age <= seconds,
        detail: newest ? `the newest backup (${newest.id}) is ${Math.round(age / 3600)} hours old; the limit is ${maxAge}` : 'there is no backup',
        hint: age <= seconds ? undefined : `take a backup (pgharbor backup ${server.name}), and check that cron runs it`,
      });
    }
  }
}

export function parseAge(text: string): number {
  const match = /^\s*([0-9]+)\s+(HOUR|HOURS|DAY|DAYS|WEEK|WEEKS)\s*$/i.exec(text);
  if (!match) throw new Error(`invalid age "${text}"`);
  const unit = match[2].toUpperCase().replace(/S$/, '');
  return Number(match[1]) * (unit === 'HOUR' ? 3600 : unit === 'DAY' ? 86400 : 604800);
}
