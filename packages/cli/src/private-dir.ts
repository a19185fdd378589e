/**
 * pgharbor's per-user scratch directory for what archive_command calls share
 * between runs: the async spool cache (async-confirm.ts) and the WAL server's
 * socket (wal-server-address.ts). Both let a call skip work on the word of
 * something found there, so it is trusted only when nobody else could have
 * written into it. Tiny on purpose: bin.cjs loads it before anything else.
 */
import { mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function privateDir(): string {
  return path.join(os.tmpdir(), `pgharbor-${process.getuid?.() ?? 'user'}`);
}

/** Whether `dir` is ours alone: owned by this user, writable by nobody else. */
export function isPrivateDir(dir: string): boolean {
  try {
    const info = statSync(dir);
    return info.isDirectory() && info.uid === process.getuid?.() && (info.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** Create it (mode 0700) when missing; false when it exists but is not private. */
export function ensurePrivateDir(dir = privateDir()): boolean {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return isPrivateDir(dir);
}

/**
 * 64-bit FNV-1a, for file names derived from paths. Not node:crypto:
 * loading it costs more than a whole confirmation. Whatever is named this
 * way records what it was made from, so a collision only costs a miss.
 */
export function fnv1a(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  return hash.toString(16).padStart(16, '0');
}
