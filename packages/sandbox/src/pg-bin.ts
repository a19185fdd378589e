import { execa } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { asPgUser, pgOsUser } from './pg-os-user.js';

const DEFAULT_PG_BIN = '/usr/lib/postgresql/15/bin';

/** Directory holding initdb/postgres/pgbench: explicit option, then env, then the PG 15 default. */
export function pgBinDir(pgBin?: string): string {
  return path.resolve(pgBin ?? process.env.PGHARBOR_PG_BIN ?? DEFAULT_PG_BIN);
}

/**
 * Where the client programs (pgbench, psql) for a server's bin directory
 * are: beside the server when it has them, else the default (Debian's 15):
 * the npm server packages ship none, and pgbench/psql 15 work against newer
 * servers as well as older ones.
 */
export function pgClientBinDir(serverBin: string): string {
  return existsSync(path.join(serverBin, 'pgbench')) ? serverBin : pgBinDir();
}

const versions = new Map<string, Promise<{ full: string; major: number }>>();

/**
 * Server version of the binaries; cached because every cluster needs it for the template key.
 * Asked as the OS user the clusters run as, so that a bin directory that user cannot reach
 * (an install under /root, mode 0700) fails here, saying so, instead of in initdb.
 */
export function pgVersion(binDir: string): Promise<{ full: string; major: number }> {
  let v = versions.get(binDir);
  if (!v) {
    const postgres = path.join(binDir, 'postgres');
    v = execa(postgres, ['--version'], asPgUser()).then(
      ({ stdout }) => {
        const m = /(\d+)(?:\.(\d+))?/.exec(stdout);
        if (!m) throw new Error(`cannot parse postgres version from: ${stdout}`);
        return { full: stdout.trim(), major: Number(m[1]) };
      },
      (error: Error & { code?: string }) => {
        const denied = error.code === 'EACCES' || /permission denied|EACCES/i.test(error.message);
        throw new Error(
          denied
            ? `the OS user "${pgOsUser().name}" cannot run ${postgres}: every directory above it must be searchable by that user (chmod o+x, or install the packages elsewhere)`
            : `cannot run ${postgres} --version: ${error.message}`,
        );
      },
    );
    v.catch(() => versions.delete(binDir)); // don't cache failures (e.g. wrong pgBin)
    versions.set(binDir, v);
  }
  return v;
}
