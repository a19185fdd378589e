import { statSync, type Stats } from 'node:fs';

/** What identifies a file's version: a change of any of these means it was edited, replaced or removed. */
export function fingerprint(file: string): string | undefined {
  let info: Stats;
  try {
    info = statSync(file);
  } catch {
    return undefined;
  }
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`;
}
