import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HarborError } from '../errors.js';

/**
 * Where the entries of a backup are written, and how, so that nothing lands
 * outside the target: restore, delta restore, remote restore's staging and
 * verify's copy all write through one of these.
 *
 * - Paths come from a validated manifest (manifest-validate.ts); each
 *   location is checked again to lie inside its root.
 * - Tablespace contents go straight into their (mapped) directories, never
 *   through a pg_tblspc link: restore makes those links itself, last.
 * - Directories are made one level at a time; one that already exists is
 *   taken only when lstat says it is a real directory, so a link planted in
 *   an existing data directory (delta restore) or raced in is never followed.
 * - Files are opened with O_CREAT | O_EXCL | O_NOFOLLOW (FILE_CREATE_FLAGS):
 *   never over something that is there, never through a link.
 */
export const FILE_CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

const TABLESPACE_CONTENT = /^pg_tblspc\/(\d+)\/(.+)$/;

export class ContainedTree {
  /** Directories known to be real directories of ours: each is checked once, not once per file. */
  private readonly checked = new Set<string>();

  constructor(
    readonly destination: string,
    /** Tablespace oid → directory its contents go to. Without one, a tablespace's contents stay in destination/pg_tblspc/<oid> (verify's copy). */
    private readonly tablespaceDirs: ReadonlyMap<number, string> = new Map(),
  ) {
    this.checked.add(destination);
    for (const dir of tablespaceDirs.values()) this.checked.add(dir); // made, or found empty, by prepareDestination
  }

  /** The root a location lives under: its tablespace directory, or the destination. */
  private rootOf(manifestPath: string): { root: string; rest: string } {
    const match = TABLESPACE_CONTENT.exec(manifestPath);
    const dir = match ? this.tablespaceDirs.get(Number(match[1])) : undefined;
    return match && dir ? { root: dir, rest: match[2] } : { root: this.destination, rest: manifestPath };
  }

  /** Where a manifest path is written. */
  location(manifestPath: string): string {
    const { root, rest } = this.rootOf(manifestPath);
    const location = path.join(root, rest);
    const inside = path.relative(root, location);
    if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) {
      // Unreachable with a validated manifest: the last line of defence, not the first.
      throw new HarborError(`refusing to write ${JSON.stringify(manifestPath)}: it resolves outside ${root}`, { hint: 'the manifest is not one pgharbor wrote; nothing outside the target was written' });
    }
    return location;
  }

  /** Make the directory for a manifest path, and its missing parents, each checked to be a real directory. */
  async makeDirectory(manifestPath: string, mode = 0o700): Promise<string> {
    const { root, rest } = this.rootOf(manifestPath);
    const target = this.location(manifestPath);
    if (this.checked.has(target)) return target;
    let dir = root;
    for (const part of rest.split('/')) {
      dir = path.join(dir, part);
      if (this.checked.has(dir)) continue;
      try {
        await fs.mkdir(dir, { mode: dir === target ? mode : 0o700 });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const found = await fs.lstat(dir);
        if (!found.isDirectory()) {
          throw new HarborError(`refusing to write into ${dir}: it is ${found.isSymbolicLink() ? 'a link' : 'not a directory'}, and restore follows no link it did not create`, {
            hint: `remove ${dir} (after checking who put it there), then restore again`,
          });
        }
      }
      this.checked.add(dir);
    }
    return target;
  }

  /** Make the parent directories of a file (cheap after the first file of a directory). */
  async makeParentOf(manifestPath: string): Promise<string> {
    const at = manifestPath.lastIndexOf('/');
    if (at !== -1) await this.makeDirectory(manifestPath.slice(0, at));
    return this.location(manifestPath);
  }
}

/**
 * A tablespace directory inside the data directory, the data directory
 * inside a tablespace, or two tablespaces in one place would write one
 * over the other (and a tablespace location comes from the manifest unless
 * mapped): refused before anything is written.
 */
export function checkSeparateRoots(destination: string, tablespaceDirs: ReadonlyMap<number, string>): void {
  const roots: [string, string][] = [['the data directory', destination], ...[...tablespaceDirs].map(([oid, dir]): [string, string] => [`tablespace ${oid}`, dir])];
  const within = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : `${b}/`);
  for (let i = 0; i < roots.length; i++) {
    for (let j = 0; j < roots.length; j++) {
      if (i !== j && within(roots[i][1], roots[j][1])) {
        throw new HarborError(`${roots[i][0]} would be restored to ${roots[i][1]}, inside ${roots[j][0]} at ${roots[j][1]}`, {
          hint: 'give each tablespace its own directory outside the data directory: --tablespace-map NAME=PATH; nothing was written',
          exitCode: 2,
        });
      }
    }
  }
}
