/**
 * The fastest path of all: with archive_async, most archive-push calls only
 * confirm a segment the background archiver already stored. That needs the
 * spool directory, which depends on the config; the first call records it
 * in a small cache keyed by the config file's path, size and mtime, and
 * later calls confirm with a stat, a read and an unlink, before loading any
 * of pgharbor. Anything unexpected returns undefined: the normal path then
 * does the full work (and reports errors properly).
 */
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensurePrivateDir, fnv1a, isPrivateDir, privateDir } from './private-dir.js';

interface SpoolCache {
  config: string;
  size: number;
  mtimeMs: number;
  /** server name → spool directory of its async archiver */
  spools: Record<string, string>;
}

function cacheFile(configPath: string): string {
  return path.join(privateDir(), `async-spool-${fnv1a(configPath)}.json`);
}

/** archive-push SERVER %p --config F: 0 when the archiver's marker confirms the segment, else undefined. */
export function confirmFromSpool(argv: string[]): number | undefined {
  const args = argv.slice(2);
  const at = args.indexOf('--config');
  const push = args.indexOf('archive-push');
  if (at < 0 || push < 0 || args.length !== push + 3) return undefined;
  try {
    const config = path.resolve(args[at + 1]);
    const file = cacheFile(config);
    // Only a cache nobody else could have written: a forged one would confirm WAL that was never stored.
    if (!isPrivateDir(path.dirname(file))) return undefined;
    const cache = JSON.parse(readFileSync(file, 'utf8')) as SpoolCache;
    const stat = statSync(config);
    if (cache.config !== config || cache.size !== stat.size || cache.mtimeMs !== stat.mtimeMs) return undefined;
    const spool = cache.spools[args[push + 1]];
    if (!spool) return undefined;
    unlinkSync(path.join(spool, 'out', `${path.basename(args[push + 2])}.ok`));
    return 0;
  } catch {
    return undefined;
  }
}

/** Remember where a server's async spool is, for the next calls. */
export function rememberSpool(configPath: string, server: string, spoolDir: string): void {
  try {
    const config = path.resolve(configPath);
    const file = cacheFile(config);
    const stat = statSync(config);
    let cache: SpoolCache = { config, size: stat.size, mtimeMs: stat.mtimeMs, spools: {} };
    try {
      const old = JSON.parse(readFileSync(file, 'utf8')) as SpoolCache;
      if (old.config === config && old.size === stat.size && old.mtimeMs === stat.mtimeMs) cache = old;
    } catch {
      // no cache yet
    }
    if (cache.spools[server] === spoolDir) return;
    cache.spools[server] = spoolDir;
    if (!ensurePrivateDir(path.dirname(file))) return;
    writeFileSync(`${file}.${process.pid}`, JSON.stringify(cache), { mode: 0o600 });
    renameSync(`${file}.${process.pid}`, file);
  } catch {
    // a cache only: never fail archive-push because of it
  }
}
