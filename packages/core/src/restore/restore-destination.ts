import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { HarborError } from '../errors.js';

const execFileAsync = promisify(execFile);
import type { Logger } from '../log.js';

/**
 * A restore writes only into empty or new directories: it must never mix
 * a backup with whatever a directory held before.
 */
export async function prepareDestination(destination: string, tablespaceDirs: string[]): Promise<void> {
  for (const dir of [destination, ...tablespaceDirs]) {
    let entries: string[];
    try {
      entries = await fs.readdir(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      if (code === 'ENOTDIR') throw new HarborError(`restore target ${dir} is not a directory`, { hint: 'give a new or empty directory' });
      throw new HarborError(`cannot read restore target ${dir}: ${(error as Error).message}`, { hint: 'check the path and its permissions' });
    }
    if (entries.length > 0) {
      throw new HarborError(`restore target ${dir} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')})`, {
        hint: 'restore into a new or empty directory; move or remove what is there first (stop PostgreSQL if it runs there)',
      });
    }
  }
  for (const dir of [destination, ...tablespaceDirs]) {
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await fs.chmod(dir, 0o700);
      await fs.access(dir, fs.constants.W_OK);
    } catch (error) {
      throw new HarborError(`cannot create restore target ${dir}: ${(error as Error).message}`, { hint: 'check that the parent directory exists and is writable' });
    }
  }
}

/**
 * Make everything written under these roots durable: syncfs(2) through
 * `sync -f` (coreutils), once per filesystem, instead of one fsync per file
 * and directory; where `sync -f` is missing, fsync every file and directory.
 */
export async function syncFilesystems(destination: string, extraRoots: string[]): Promise<void> {
  for (const root of [destination, ...extraRoots]) {
    try {
      await execFileAsync('sync', ['-f', root]);
    } catch {
      await fsyncTree(root);
    }
  }
}

async function fsyncTree(root: string): Promise<void> {
  const paths: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) paths.push(p);
    }
    paths.push(dir); // after its contents
  };
  await walk(root);
  for (const p of paths) {
    const handle = await fs.open(p, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/**
 * When run as root, give the restored tree to the owner of the directory it
 * was restored into (or of its parent), so PostgreSQL can start on it:
 * prepare the target with `install -d -o postgres -m 700 DEST`.
 */
export async function handOverOwnership(destination: string, extraRoots: string[], logger: Logger): Promise<void> {
  if (process.getuid?.() !== 0) return;
  for (const root of [destination, ...extraRoots]) {
    let owner = await fs.stat(root);
    if (owner.uid === 0) owner = await fs.stat(path.dirname(root));
    if (owner.uid === 0) {
      logger.warn(`${root} is owned by root; PostgreSQL will not start on it: chown -R postgres: ${root}`);
      continue;
    }
    await chownTree(root, owner.uid, owner.gid);
  }
}

/**
 * `chown -R -h -P` (coreutils): symlinks themselves, never followed, like the
 * walk below, which it replaces where it exists: one process instead of three
 * awaited calls per file took a scale-100 restore's hand-over from 0.1-0.35 s
 * to a few ms.
 */
async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  try {
    await execFileAsync('chown', ['-R', '-h', '-P', `${uid}:${gid}`, '--', root]);
    return;
  } catch {
    // no chown(1), or it failed: the walk reports the failing path itself
  }
  const walk = async (p: string): Promise<void> => {
    await fs.lchown(p, uid, gid);
    const stat = await fs.lstat(p);
    if (stat.isDirectory()) for (const name of await fs.readdir(p)) await walk(path.join(p, name));
  };
  await walk(root);
}
