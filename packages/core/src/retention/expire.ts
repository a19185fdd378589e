import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { Repository } from '../repository/repository.js';
import type { BackupManifest } from '../repository/manifest.js';
import type { RetentionEvent } from '../hooks.js';
import { acquireLock } from '../repository/repository-lock.js';
import { deleteBackup, finishPendingDeletions } from '../backup/delete-backup.js';
import { listArchivedWal } from '../archive/wal-archive.js';
import { dependentsOf } from '../repository/backup-chain.js';
import { decideRetention, walExpires, type RetentionDecision } from './retention-decision.js';
import { parseRetentionPolicy, type RetentionPolicy } from './retention-policy.js';

export interface ExpiredItem {
  repository: string;
  kind: 'backup' | 'wal';
  /** Backup id, or "first..last (n files)" for WAL. */
  subject: string;
  reason: string;
  /** Set when a plugin vetoed the removal. */
  keptBecause?: string;
}

/** The policy that applies to a repository: its own, else the server's. */
export function policyFor(server: ServerHandle, repository: Repository): RetentionPolicy | undefined {
  const own = server.config.repositories[repository.index - 1]?.retention as string | undefined;
  const text = own ?? (server.config.retention as string | undefined);
  return text ? parseRetentionPolicy(text, `servers.${server.name}.retention`) : undefined;
}

/** `manifests`: pass them when already read, so that a listing does not read every manifest twice. */
export async function retentionDecision(server: ServerHandle, repository: Repository, now = new Date(), manifests?: BackupManifest[]): Promise<RetentionDecision> {
  return decideRetention(manifests ?? (await repository.listManifests()), policyFor(server, repository), {
    now,
    minimumRedundancy: server.config.minimum_redundancy as number | undefined,
  });
}

/**
 * `pgharbor expire`: apply the policy to every repository of the server
 * (under the backup lock, so it never races a backup): finishing deletions
 * that were interrupted, removing obsolete backups, then the WAL no retained
 * backup needs. With `dryRun`, only says
 * what it would remove.
 */
export async function expire(harbor: Harbor, server: ServerHandle, options: { dryRun?: boolean; now?: Date } = {}): Promise<ExpiredItem[]> {
  const done: ExpiredItem[] = [];
  for (const repository of await server.repositories()) {
    const policy = policyFor(server, repository);
    // No policy: keep everything, but still finish an interrupted deletion.
    if (!policy && (options.dryRun || (await repository.pendingDeletions()).length === 0)) continue;
    const lock = options.dryRun ? undefined : await acquireLock(repository, 'backup', 'expire');
    try {
      // First what an interrupted delete or expire left: it was decided then, and it is not counted now.
      if (!options.dryRun) {
        for (const id of await finishPendingDeletions(harbor, repository)) {
          done.push({ repository: repository.name, kind: 'backup', subject: id, reason: 'its interrupted deletion was finished' });
        }
      }
      if (!policy) continue;
      const manifests = await repository.listManifests();
      const decision = await retentionDecision(server, repository, options.now, manifests);
      // Newest first, so that a backup never outlives the one it is built on; what a plugin keeps, keeps what it needs.
      const kept = new Set<string>();
      const items: ExpiredItem[] = [];
      for (const id of [...decision.expire].reverse()) {
        const item: ExpiredItem = { repository: repository.name, kind: 'backup', subject: id, reason: decision.reasons.get(id) ?? 'obsolete' };
        items.unshift(item);
        const keeper = dependentsOf(manifests, id).find((d) => kept.has(d.id));
        if (keeper) {
          item.keptBecause = `${keeper.id}, which depends on it, was kept`;
          kept.add(id);
          continue;
        }
        const event: RetentionEvent = { server: server.name, repository: repository.location, subject: id, kind: 'backup', reason: item.reason };
        const veto = options.dryRun ? undefined : await harbor.hooks.retention.beforeExpire.promise(event);
        if (typeof veto === 'string') {
          item.keptBecause = veto;
          kept.add(id);
        } else if (!options.dryRun) {
          // Through the delete path, so that pre/post delete scripts run for retention too.
          const { dependents } = await deleteBackup(harbor, server, id, { repo: repository.index, force: true, withDependents: true, locked: true, operation: 'expire', reason: item.reason });
          for (const dependent of dependents) items.unshift({ repository: repository.name, kind: 'backup', subject: dependent, reason: `built on ${id}, which expired` });
          await harbor.hooks.retention.expired.promise(event);
        }
      }
      done.push(...items);
      const walItem = await expireWal(harbor, server, repository, decision, options.dryRun ?? false);
      if (walItem) done.push(walItem);
    } finally {
      await lock?.release();
    }
  }
  return done;
}

async function expireWal(harbor: Harbor, server: ServerHandle, repository: Repository, decision: RetentionDecision, dryRun: boolean): Promise<ExpiredItem | undefined> {
  const doomed: { key: string; name: string }[] = [];
  for await (const wal of listArchivedWal(repository.storage, server.name)) {
    if (walExpires(wal.name, decision)) doomed.push(wal);
  }
  if (doomed.length === 0) return undefined;
  doomed.sort((a, b) => (a.name < b.name ? -1 : 1));
  const subject = `${doomed[0].name}..${doomed.at(-1)!.name} (${doomed.length} files)`;
  const reason = `older than ${decision.walCutoffFile ? `${decision.walCutoffFile}, the start of the oldest retained backup` : 'every retained backup'}`;
  const event: RetentionEvent = { server: server.name, repository: repository.location, subject, kind: 'wal', reason };
  const item: ExpiredItem = { repository: repository.name, kind: 'wal', subject, reason };
  if (dryRun) return item;
  const veto = await harbor.hooks.retention.beforeExpire.promise(event);
  if (typeof veto === 'string') return { ...item, keptBecause: veto };
  for (const wal of doomed) await repository.storage.delete(wal.key);
  await harbor.hooks.retention.expired.promise(event);
  return item;
}
