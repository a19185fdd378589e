import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { ServerHandle } from '../server-handle.js';
import { pgMajor } from '../repository/server-identity.js';
import { loadExeca } from '../lazy-execa.js';

/**
 * The PostgreSQL programs pgharbor runs (backups need none: it speaks
 * BASE_BACKUP itself), and which server majors each one serves
 * (src/bin/pg_basebackup/pg_receivewal.c, pg_verifybackup.c):
 *
 * - pg_receivewal refuses a server newer than itself ("incompatible server
 *   version 17.10; client does not support streaming from server versions
 *   newer than 15"); it serves every older major pgharbor supports.
 * - pg_verifybackup parses the backup's WAL with its own pg_waldump, which
 *   reads only its own major's WAL (the page magic changes every major), and
 *   18's backup_manifest (version 2) is unknown to older ones: the same major.
 */
export type ClientTool = 'pg_receivewal' | 'pg_verifybackup';

export interface ClientToolProbe {
  tool: ClientTool;
  /** What pgharbor runs: pg_bin_dir's, Debian's directory of the server's major, or PATH's. */
  path: string;
  /** Its major, from --version; undefined when it cannot run. */
  major?: number;
  /** Its --version line, or why it cannot run. */
  detail: string;
  serverMajor: number;
  ok: boolean;
  /** Which program of which version to install, and how, when it is not ok. */
  hint?: string;
}

/** "pg_receivewal (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15. */
export function parseToolMajor(versionOutput: string): number | undefined {
  const match = /\(PostgreSQL\) (\d+)(?:\.(\d+))?/.exec(versionOutput);
  return match ? Number(match[1]) : undefined;
}

/**
 * Whether `tool` of major `toolMajor` works with a server (or backup) of
 * `serverMajor`; pg_verifybackup --no-parse-wal (`parsesWal` false) reads
 * only the manifest, which a newer one reads too.
 */
export function toolServes(tool: ClientTool, toolMajor: number, serverMajor: number, parsesWal = true): boolean {
  return tool === 'pg_verifybackup' && parsesWal ? toolMajor === serverMajor : toolMajor >= serverMajor;
}

/** How to get a program of the right major: the package names of the PGDG repositories. */
export function installHint(tool: ClientTool, serverMajor: number, server: string): string {
  const which = tool === 'pg_verifybackup' ? `${tool} ${serverMajor}` : `${tool} ${serverMajor} or newer`;
  // Debian ships pg_waldump, which pg_verifybackup runs, in the server package.
  const debian = tool === 'pg_verifybackup' ? `postgresql-${serverMajor}` : `postgresql-client-${serverMajor}`;
  return (
    `install PostgreSQL ${serverMajor}'s client programs (Debian/Ubuntu: apt install ${debian}, from apt.postgresql.org; ` +
    `RHEL: dnf install postgresql${serverMajor}), or set pg_bin_dir in servers.${server} to a directory holding ${which}`
  );
}

/** Find, run (--version) and judge the program pgharbor would run for a server of `serverVersionNum`. */
export async function probeClientTool(server: ServerHandle, tool: ClientTool, serverVersionNum: number, parsesWal = true): Promise<ClientToolProbe> {
  const serverMajor = pgMajor(serverVersionNum);
  const path = onPath(server.pgTool(tool, serverVersionNum));
  const execa = await loadExeca();
  const result = await execa(path, ['--version'], { reject: false, stdin: 'ignore', timeout: 10_000 });
  const version = String(result.stdout ?? '').trim();
  const major = result.exitCode === 0 ? parseToolMajor(version) : undefined;
  if (major === undefined) {
    return { tool, path, serverMajor, ok: false, detail: `${path} not found or not runnable`, hint: installHint(tool, serverMajor, server.name) };
  }
  const ok = toolServes(tool, major, serverMajor, parsesWal);
  const need = tool === 'pg_verifybackup' && parsesWal ? `PostgreSQL ${serverMajor}'s own` : `one of PostgreSQL ${serverMajor} or newer`;
  return {
    tool,
    path,
    major,
    serverMajor,
    ok,
    detail: ok ? `${version} (${path})` : `${path} is ${tool} ${major}, which cannot serve PostgreSQL ${serverMajor}: it needs ${need}`,
    hint: ok ? undefined : installHint(tool, serverMajor, server.name),
  };
}

/** A bare program name as PATH resolves it, so that messages say which program ran (Debian's pg_wrapper picks its newest client). */
function onPath(tool: string): string {
  if (isAbsolute(tool) || tool.includes('/')) return tool;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not here
    }
  }
  return tool;
}
