import { execa } from 'execa';
import path from 'node:path';

const DEFAULT_PG_BIN = '/usr/lib/postgresql/15/bin';

/** Directory holding initdb/postgres/pgbench: explicit option, then env, then the PG 15 default. */
export function pgBinDir(pgBin?: string): string {
  return path.resolve(pgBin ?? process.env.PGHARBOR_PG_BIN ?? DEFAULT_PG_BIN);
}

const versions = new Map<string, Promise<{ full: string; major: number }>>();

/** Server version of the binaries; cached because every cluster needs it for the template key. */
export function pgVersion(binDir: string): Promise<{ full: string; major: number }> {
  let v = versions.get(binDir);
  if (!v) {
    // `postgres --version` is answered before the root check, so it is safe to run as root.
    v = execa(path.join(binDir, 'postgres'), ['--version']).then(({ stdout }) => {
      const m = /(\d+)(?:\.(\d+))?/.exec(stdout);
      if (!m) throw new Error(`cannot parse postgres version from: ${stdout}`);
      return { full: stdout.trim(), major: Number(m[1]) };
    });
    v.catch(() => versions.delete(binDir)); // don't cache failures (e.g. wrong pgBin)
    versions.set(binDir, v);
  }
  return v;
}
