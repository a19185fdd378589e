/**
 * Chains of backups: a differential or incremental backup names its parent
 * and its files may be references to older backups, so it restores only
 * while every backup it depends on is there and DONE. These helpers answer
 * the two questions every command asks: what does this backup need (its
 * chain), and what needs it (its dependents).
 */
import type { BackupManifest } from './manifest.js';
import { displayStatus } from './backup-status.js';

/** The backups `backup` reads bytes from: its parent, and any backup its files reference. */
export function directDependencies(backup: BackupManifest): Set<string> {
  const needs = new Set<string>();
  if (backup.parent) needs.add(backup.parent);
  for (const file of backup.files) if (file.reference && file.reference !== backup.id) needs.add(file.reference);
  return needs;
}

export interface ChainProblem {
  /** The backup of the chain that is missing or unusable. */
  id: string;
  /** Which backup needs it. */
  neededBy: string;
  reason: string;
}

/**
 * Every backup `id` depends on, transitively, oldest first (the full at the
 * root), or the first problem found: a dependency that is missing, not
 * DONE, being deleted, newer than what needs it, or a loop. A chain is
 * only restorable when this returns no problem.
 */
export function resolveChain(backups: BackupManifest[], id: string): { chain: BackupManifest[]; problem?: ChainProblem } {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const seen = new Set<string>([id]);
  const chain: BackupManifest[] = [];
  const queue = [id];
  while (queue.length) {
    const current = byId.get(queue.shift()!);
    if (!current) continue;
    for (const needed of directDependencies(current)) {
      if (needed === id || (seen.has(needed) && needed >= current.id)) {
        return { chain, problem: { id: needed, neededBy: current.id, reason: 'the chain of parents loops' } };
      }
      if (seen.has(needed)) continue;
      seen.add(needed);
      const found = byId.get(needed);
      // Ids are start times: a backup can only depend on one that started before it.
      if (needed >= current.id) return { chain, problem: { id: needed, neededBy: current.id, reason: 'it is not older than the backup that depends on it' } };
      if (!found) return { chain, problem: { id: needed, neededBy: current.id, reason: 'it is not in this repository (deleted, or its manifest is invalid)' } };
      const status = displayStatus(found);
      if (status !== 'DONE') return { chain, problem: { id: needed, neededBy: current.id, reason: `it is ${status}` } };
      if (found.systemIdentifier !== current.systemIdentifier) return { chain, problem: { id: needed, neededBy: current.id, reason: 'it is a backup of another cluster (system identifier)' } };
      chain.push(found);
      queue.push(needed);
    }
  }
  chain.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { chain };
}

/** Every backup that depends on `id`, directly or through others, newest first (the order to delete them in). */
export function dependentsOf(backups: BackupManifest[], id: string): BackupManifest[] {
  const found = new Map<string, BackupManifest>();
  let frontier = new Set([id]);
  while (frontier.size) {
    const next = new Set<string>();
    for (const backup of backups) {
      if (found.has(backup.id) || backup.id === id) continue;
      const needs = directDependencies(backup);
      if ([...frontier].some((f) => needs.has(f))) {
        found.set(backup.id, backup);
        next.add(backup.id);
      }
    }
    frontier = next;
  }
  return [...found.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}
