import type { BackupManifest } from '../repository/manifest.js';
import { displayStatus } from '../repository/backup-status.js';
import { windowStart, type RetentionPolicy } from './retention-policy.js';
import { directDependencies } from '../repository/backup-chain.js';

/** What the policy says of a backup, as list-backups and show-backup show it. */
export type RetentionStatus = 'VALID' | 'OBSOLETE' | 'KEEP:FULL' | 'KEEP:STANDALONE' | 'FAILED' | 'RUNNING';

export interface RetentionDecision {
  status: Map<string, RetentionStatus>;
  /** Why each obsolete backup goes, or why a backup the policy alone would drop stays. */
  reasons: Map<string, string>;
  /** Backups that must go (OBSOLETE, and FAILED ones older than every retained backup). */
  expire: string[];
  /**
   * WAL before this segment number (the last 16 hex digits of a segment name)
   * is needed by no retained backup, except the ranges of standalone keeps.
   */
  walCutoff?: string;
  /** The WAL file that walCutoff comes from (with its timeline), for messages. */
  walCutoffFile?: string;
  standaloneRanges: { start: string; stop: string }[];
}

/**
 * Decide, without touching anything, what a policy keeps. Pure: the clock
 * comes in as `now`, so the tests can date backups freely.
 *
 * - REDUNDANCY n: the n newest full backups are VALID, with every backup
 *   after the oldest of them (their differentials and incrementals): a chain
 *   counts once, as in pgBackRest's repo-retention-full and Barman's root
 *   backups. Without chains, that is the n newest backups.
 * - RECOVERY WINDOW: every backup that ended inside the window, plus the
 *   newest one that ended before it (recovery to the window's first moment
 *   starts from there).
 * - minimum_redundancy: never fewer DONE backups than this, whatever the policy.
 * - A kept backup is never obsolete; a retained backup keeps the backups it
 *   depends on (its parent, and any backup whose files it reuses).
 */
export function decideRetention(
  backups: BackupManifest[],
  policy: RetentionPolicy | undefined,
  options: { now: Date; minimumRedundancy?: number },
): RetentionDecision {
  const status = new Map<string, RetentionStatus>();
  const reasons = new Map<string, string>();
  const sorted = [...backups].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const done = sorted.filter((b) => displayStatus(b) === 'DONE');
  const byId = new Map(sorted.map((b) => [b.id, b]));

  const retained = new Set<string>();
  if (!policy) done.forEach((b) => retained.add(b.id));
  else if (policy.kind === 'redundancy') {
    // The n newest fulls and everything after the oldest of them (the backups built on them, and any newer).
    const oldestRoot = done.filter((b) => !b.parent).slice(-policy.count)[0];
    for (const b of done) if (oldestRoot && b.id >= oldestRoot.id) retained.add(b.id);
  }
  else {
    const start = windowStart(policy, options.now).getTime();
    const endOf = (b: BackupManifest) => Date.parse(b.stopTime ?? b.startTime);
    const inside = done.filter((b) => endOf(b) >= start);
    const before = done.filter((b) => endOf(b) < start).at(-1);
    inside.forEach((b) => retained.add(b.id));
    if (before) {
      retained.add(before.id);
      reasons.set(before.id, 'the newest backup before the recovery window starts: recovery to the window start begins here');
    }
  }

  // minimum_redundancy: take back the newest obsolete ones until there are enough.
  const minimum = options.minimumRedundancy ?? 0;
  for (const b of [...done].reverse()) {
    if (retained.size >= minimum) break;
    if (!retained.has(b.id)) {
      retained.add(b.id);
      reasons.set(b.id, `kept for minimum_redundancy ${minimum}`);
    }
  }

  for (const b of done) {
    if (b.keep) {
      status.set(b.id, b.keep === 'standalone' ? 'KEEP:STANDALONE' : 'KEEP:FULL');
      retained.add(b.id);
    }
  }

  // Dependencies: a retained backup keeps whatever it reuses files from, transitively.
  const queue = [...retained];
  while (queue.length) {
    const b = byId.get(queue.pop()!);
    if (!b) continue;
    for (const id of directDependencies(b)) {
      if (!retained.has(id) && byId.has(id)) {
        retained.add(id);
        reasons.set(id, `needed by retained backup ${b.id}`);
        queue.push(id);
      }
    }
  }

  const oldestRetained = done.find((b) => retained.has(b.id) && b.keep !== 'standalone');
  for (const b of sorted) {
    const shown = displayStatus(b);
    if (status.has(b.id) || shown === 'DELETING') continue; // not counted, not retained: its deletion only needs finishing
    if (shown === 'STARTED') status.set(b.id, 'RUNNING');
    else if (shown === 'FAILED') status.set(b.id, 'FAILED');
    else status.set(b.id, retained.has(b.id) ? 'VALID' : 'OBSOLETE');
  }

  const expire: string[] = [];
  const chains = done.some((b) => b.parent);
  const kind = chains ? 'full backup' : 'backup';
  for (const b of sorted) {
    const s = status.get(b.id);
    if (s === 'OBSOLETE') {
      expire.push(b.id);
      const newer = done.filter((d) => d.id > b.id && (!chains || !d.parent)).length;
      reasons.set(
        b.id,
        policy?.kind === 'redundancy'
          ? `${newer} newer ${kind}${newer === 1 ? '' : 's'}, and REDUNDANCY ${policy.count} keeps the ${policy.count} newest${chains ? ' with the backups built on them' : ''}`
          : 'ended before the recovery window, and a newer backup covers the window start',
      );
    } else if (s === 'FAILED' && oldestRetained && b.id < oldestRetained.id) {
      expire.push(b.id);
      reasons.set(b.id, `FAILED, and older than the oldest retained backup ${oldestRetained.id}`);
    }
  }

  const segmentOf = (wal: string | undefined) => wal?.slice(8);
  return {
    status,
    reasons,
    expire,
    walCutoff: oldestRetained ? segmentOf(oldestRetained.startWal) : undefined,
    walCutoffFile: oldestRetained?.startWal,
    standaloneRanges: done.filter((b) => b.keep === 'standalone' && b.startWal && b.stopWal).map((b) => ({ start: b.startWal!.slice(8), stop: b.stopWal!.slice(8) })),
  };
}

/**
 * Whether an archived WAL file may go: older than every retained backup's
 * start, and outside every standalone keep's own range. History files stay
 * (a few bytes each, and recovery needs every timeline's history).
 */
export function walExpires(name: string, decision: RetentionDecision): boolean {
  if (!decision.walCutoff || name.endsWith('.history')) return false;
  const segment = name.slice(8, 24);
  if (segment >= decision.walCutoff) return false;
  return !decision.standaloneRanges.some((r) => segment >= r.start && segment <= r.stop);
}
