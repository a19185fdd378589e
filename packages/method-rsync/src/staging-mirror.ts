import fs from 'node:fs/promises';
import path from 'node:path';
import type { Repository, ServerHandle } from '@pgharbor/core';

/**
 * Repositories that cannot hold a plain tree (S3, SFTP, encrypted) get
 * their copy through a local mirror of the data directory kept between
 * backups: rsync brings it up to date (only changed files cross the
 * network), then the backup stores what changed since the previous one.
 */
export function stagingMirror(server: ServerHandle, repository: Repository, stagingDir: string | undefined): string {
  const parent = stagingDir ? path.resolve(server.configDir, stagingDir) : path.join(server.harbor.stateDir(), 'rsync-mirror');
  return path.join(parent, server.name, repository.name);
}

export interface MirrorState {
  /** When the last complete copy into the mirror started (epoch seconds): files modified since are compared by checksum. */
  horizon: number;
  systemIdentifier: string;
}

const STATE_FILE = '.pgharbor-mirror.json';

export async function readMirrorState(dir: string): Promise<MirrorState | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, STATE_FILE), 'utf8')) as MirrorState;
  } catch {
    return undefined;
  }
}

/** Written only after a backup from the mirror succeeded: a failed copy leaves the old horizon, which rechecks more, never less. */
export async function writeMirrorState(dir: string, state: MirrorState): Promise<void> {
  const temporary = path.join(dir, `${STATE_FILE}.tmp`);
  await fs.writeFile(temporary, JSON.stringify(state), { mode: 0o600 });
  await fs.rename(temporary, path.join(dir, STATE_FILE));
}

export const MIRROR_STATE_FILE = STATE_FILE;
