import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asPgUser, pgOsUser } from './pg-os-user.js';
import { pgVersion } from './pg-bin.js';

/** Password of role postgres; only needed over TCP (unix sockets use trust). */
export const SANDBOX_PASSWORD = 'sandbox-secret';

/** initdb's arguments for a major: --no-instructions came with 14 (13's initdb refuses it). */
function initdbArgs(major: number): string[] {
  return [
    '--data-checksums',
    '-U', 'postgres',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '-E', 'UTF8',
    '--locale=C',
    ...(major >= 14 ? ['--no-instructions'] : []),
    '--no-sync', // the template lives in /tmp and is copied anyway; fsync buys nothing here
  ];
}

// Written explicitly so the rules don't depend on initdb's pg_hba.conf.sample of a given version.
const PG_HBA = `# pgharbor sandbox
local   all           all                      trust
local   replication   all                      trust
host    all           all     127.0.0.1/32     scram-sha-256
host    replication   all     127.0.0.1/32     scram-sha-256
`;

const pending = new Map<string, Promise<string>>();

/**
 * Path of a pristine initdb'd data directory shared by all clusters (and all test workers) with
 * the same binaries and OS user: initdb costs ~0.4 s, copying the result ~30 ms.
 */
export function ensureTemplate(binDir: string): Promise<string> {
  let p = pending.get(binDir);
  if (!p) {
    p = buildTemplate(binDir);
    p.catch(() => pending.delete(binDir));
    pending.set(binDir, p);
  }
  return p;
}

const isComplete = (dir: string) =>
  existsSync(path.join(dir, 'PG_VERSION')) && existsSync(path.join(dir, 'global', 'pg_control'));

async function buildTemplate(binDir: string): Promise<string> {
  const { full, major } = await pgVersion(binDir);
  const user = pgOsUser();
  const args = initdbArgs(major);
  const key = createHash('sha256')
    .update(JSON.stringify([binDir, full, user.uid, args, PG_HBA, SANDBOX_PASSWORD]))
    .digest('hex')
    .slice(0, 12);
  const final = path.join(os.tmpdir(), `pgharbor-sandbox-template-${major}-${key}`);
  if (isComplete(final)) return final;
  if (existsSync(final)) {
    // Half-deleted (e.g. by a tmp cleaner): move it aside atomically so racers don't copy it.
    await rename(final, `${final}.stale-${process.pid}-${Date.now()}`).catch(() => {});
  }

  // Build in a private dir and publish with one rename(), so parallel workers never see a partial
  // template. The parent must be traversable by the OS user, hence the chown.
  const work = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-sandbox-initdb-'));
  try {
    const data = path.join(work, 'data');
    const pwfile = path.join(work, 'pwfile');
    await writeFile(pwfile, `${SANDBOX_PASSWORD}\n`, { mode: 0o600 });
    if (process.getuid?.() === 0) {
      await chown(work, user.uid, user.gid);
      await chown(pwfile, user.uid, user.gid);
    }
    await execa(path.join(binDir, 'initdb'), ['-D', data, `--pwfile=${pwfile}`, ...args], asPgUser());
    await writeFile(path.join(data, 'pg_hba.conf'), PG_HBA); // overwrite keeps initdb's owner/mode
    await chmod(data, 0o700);
    try {
      await rename(data, final);
    } catch (e) {
      // Lost the race against another worker: its template is equivalent, use it.
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !isComplete(final)) throw e;
    }
    return final;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
