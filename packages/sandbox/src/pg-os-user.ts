import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface OsUser {
  uid: number;
  gid: number;
  name: string;
}

let cached: (OsUser & { home: string }) | undefined;

function lookup(): OsUser & { home: string } {
  if (cached) return cached;
  if (process.getuid?.() !== 0) {
    const me = os.userInfo();
    return (cached = { uid: me.uid, gid: me.gid, name: me.username, home: me.homedir });
  }
  // initdb/postgres refuse to run as root, so root hands the clusters to the `postgres` account.
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but no OS user "postgres" exists in /etc/passwd');
  const [name, , uid, gid, , home] = line.split(':');
  return (cached = { name, uid: Number(uid), gid: Number(gid), home: home || '/' });
}

/** The OS user sandbox clusters (and pgbench etc.) run as. */
export function pgOsUser(): OsUser {
  const { uid, gid, name } = lookup();
  return { uid, gid, name };
}

/**
 * execa options that run a child as the cluster's OS user. cwd and HOME point somewhere that
 * user can read: inheriting /root (0700) would make chdir fail or libpq warn about ~/.pgpass.
 */
export function asPgUser(): { uid?: number; gid?: number; cwd: string; env: Record<string, string> } {
  const u = lookup();
  const switching = process.getuid?.() === 0;
  return {
    ...(switching ? { uid: u.uid, gid: u.gid } : {}),
    cwd: '/',
    env: { HOME: u.home },
  };
}

/** Recursively hand a path (e.g. a restored data directory) to the cluster's OS user. */
export async function chownToPgUser(target: string): Promise<void> {
  if (process.getuid?.() !== 0) return; // non-root can only own files as itself already
  const { uid, gid } = lookup();
  await execa('chown', ['-R', `${uid}:${gid}`, target]);
}
