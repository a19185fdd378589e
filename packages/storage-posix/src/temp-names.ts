/**
 * Temp files live next to their final name as `.<name>.tmp-<pid>-<random>`,
 * so rename(2) and link(2) stay within one directory (and one filesystem),
 * and list() can skip writes in progress or left behind by a crash.
 */
export function tempNameFor(name: string, random: string): string {
  return `.${name}.tmp-${process.pid}-${random}`;
}

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes('.tmp-');
}
