/**
 * The config of archive-push/archive-get exactly as the full CLI validated
 * it, for the lean path (wal-command.ts). That path cannot afford ajv
 * (compiling the schema costs a call about 45 ms), and it once read configs
 * with a parser and defaults merge of its own, which accepted configs every
 * other command rejects. Now the first call after a config changes takes
 * the full path (Harbor.load: every plugin's schema, defaults, exit 2 on an
 * error, nothing stored), which records here the config text it validated
 * and the result; later calls whose config text is byte for byte the same
 * use that result. Kept in the private scratch directory: a memo somebody
 * else could write would let them skip validation.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadedConfig } from '@pgharbor/core';
import { fingerprint } from './file-fingerprint.js';
import { ensurePrivateDir, fnv1a, isPrivateDir, privateDir } from './private-dir.js';

interface Memo {
  configFile: string;
  configText: string;
  /** The build that validated it: a rebuilt or upgraded pgharbor may validate differently. */
  code: string;
  loaded: LoadedConfig;
}

function memoFile(configFile: string): string {
  return path.join(privateDir(), `validated-${fnv1a(configFile)}.json`);
}

/** The lean bundle, present in every build the lean path runs from; dist/ holds both it and this module's other form. */
function codeStamp(): string {
  return fingerprint(path.join(path.dirname(fileURLToPath(import.meta.url)), 'wal-command.cjs')) ?? 'no-bundle';
}

/** The validated config of `configFile` if its text is still `configText` and this build validated it; else undefined. */
export function validatedConfig(configFile: string, configText: string): LoadedConfig | undefined {
  if (!isPrivateDir(privateDir())) return undefined;
  let memo: Memo;
  try {
    memo = JSON.parse(readFileSync(memoFile(configFile), 'utf8')) as Memo;
  } catch {
    return undefined;
  }
  if (memo.configFile !== configFile || memo.configText !== configText || memo.code !== codeStamp()) return undefined;
  return memo.loaded;
}

/**
 * After Harbor.load validated `loaded` from `configFile`: remember it when
 * the file still holds `textBefore`, the text read before the load began
 * (a file edited during the load is not remembered: the next call
 * validates again). Never fails the call it is part of.
 */
export function rememberValidatedConfig(loaded: LoadedConfig, textBefore: string | undefined): void {
  try {
    if (textBefore === undefined || readFileSync(loaded.filepath, 'utf8') !== textBefore || !ensurePrivateDir()) return;
    const file = memoFile(loaded.filepath);
    const memo: Memo = { configFile: loaded.filepath, configText: textBefore, code: codeStamp(), loaded };
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(memo), { mode: 0o600 });
    renameSync(temporary, file);
  } catch {
    // a memo is an optimisation: without it the next call validates again
  }
}

/** The config file's text, or undefined when it cannot be read (the full CLI then says why). */
export function readConfigText(configFile: string): string | undefined {
  try {
    return readFileSync(configFile, 'utf8');
  } catch {
    return undefined;
  }
}

/** Drop what was remembered of `configFile` (the build's training run, which removes its config afterwards). */
export function forgetValidatedConfig(configFile: string): void {
  rmSync(memoFile(configFile), { force: true });
}
