import fs from 'node:fs/promises';
import path from 'node:path';
import type { RemoteEntry } from './rsync-runner.js';

/** One entry of a local directory tree, with what identifies the file on disk (for hard-link detection). */
export type LocalEntry = RemoteEntry & { dev: number; ino: number };

/** Every entry under `root` (not following symlinks), parents before children. */
export async function scanTree(root: string): Promise<LocalEntry[]> {
  const entries: LocalEntry[] = [];
  const walk = async (relative: string): Promise<void> => {
    const dir = path.join(root, relative);
    for (const dirent of await fs.readdir(dir, { withFileTypes: true })) {
      const rel = relative ? `${relative}/${dirent.name}` : dirent.name;
      const full = path.join(root, rel);
      const info = await fs.lstat(full);
      const type = info.isDirectory() ? 'directory' : info.isSymbolicLink() ? 'symlink' : info.isFile() ? 'file' : undefined;
      if (!type) continue; // sockets, fifos: PostgreSQL keeps none in its data directory
      entries.push({
        path: rel,
        type,
        size: type === 'file' ? info.size : 0,
        mtime: Math.floor(info.mtimeMs / 1000),
        mode: info.mode & 0o7777,
        ...(type === 'symlink' ? { linkTarget: await fs.readlink(full) } : {}),
        dev: info.dev,
        ino: info.ino,
      });
      if (type === 'directory') await walk(rel);
    }
  };
  await walk('');
  return entries;
}

/** Look up a path under `root`: size, time and identity, or undefined. */
export async function statIn(root: string, relative: string): Promise<{ size: number; mtime: number; dev: number; ino: number } | undefined> {
  try {
    const info = await fs.lstat(path.join(root, relative));
    return info.isFile() ? { size: info.size, mtime: Math.floor(info.mtimeMs / 1000), dev: info.dev, ino: info.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** Remove what is under `root` but not in `keep` (a mirror must not keep files the source dropped). */
export async function pruneTree(root: string, keep: Set<string>): Promise<number> {
  let removed = 0;
  for (const entry of (await scanTree(root).catch(() => [])).reverse()) {
    if (keep.has(entry.path)) continue;
    await fs.rm(path.join(root, entry.path), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
