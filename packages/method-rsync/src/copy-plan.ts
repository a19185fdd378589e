import type { RemoteEntry } from './rsync-runner.js';

export interface CopyPlan {
  /** Directories and symlinks, plus a share of the files: the first rsync. */
  groups: string[][];
  /**
   * Files rsync's quick check (same size, same mtime to the second) would
   * skip although they may have changed: modified at or after the earlier
   * copy was taken, so a second write in the same second leaves size and
   * time alike. These are compared by checksum (Barman's "safe horizon").
   */
  recheck: string[];
  bytes: number;
}

/**
 * Split a listing across `jobs` rsync processes, largest files first onto
 * the least loaded job, and pick the files the quick check cannot be
 * trusted with. `base` describes the earlier copy (previous backup's tree
 * or the staging mirror) and `horizon` when it was taken (epoch seconds).
 */
export async function planCopy(
  entries: RemoteEntry[],
  jobs: number,
  base?: { stat(path: string): Promise<{ size: number; mtime: number } | undefined>; horizon: number },
): Promise<CopyPlan> {
  const groups: string[][] = Array.from({ length: Math.max(1, jobs) }, () => []);
  const load = groups.map(() => 0);
  const recheck: string[] = [];
  let bytes = 0;
  const files: RemoteEntry[] = [];
  for (const entry of entries) {
    if (entry.type === 'file') files.push(entry);
    else groups[0].push(entry.path);
  }
  files.sort((a, b) => b.size - a.size);
  for (const file of files) {
    bytes += file.size;
    if (base && file.mtime >= base.horizon) {
      const earlier = await base.stat(file.path);
      if (earlier && earlier.size === file.size && earlier.mtime === file.mtime) {
        recheck.push(file.path);
        continue;
      }
    }
    let least = 0;
    for (let i = 1; i < load.length; i++) if (load[i] < load[least]) least = i;
    groups[least].push(file.path);
    load[least] += file.size;
  }
  return { groups: groups.filter((g) => g.length > 0), recheck, bytes };
}
