/**
 * PostgreSQL relation files: the main fork and its segments (`16384`,
 * `16384.1`), the free space and visibility maps (`_fsm`, `_vm`) and the
 * init fork (`_init`), in base/<db>/, global/ and pg_tblspc/<oid>/<version dir>/<db>/.
 * Only they are made of 8 KiB pages that change one at a time, so only
 * they get block maps; everything else is stored or reused whole.
 */
const RELATION_FILE = /^(?:base\/\d+|global|pg_tblspc\/\d+\/[^/]+\/\d+)\/\d+(?:_(?:fsm|vm|init))?(?:\.\d+)?$/;

export function isRelationFile(path: string): boolean {
  return RELATION_FILE.test(path);
}

/** PostgreSQL's BLCKSZ (the default, and the only size pgharbor maps). */
export const BLOCK_SIZE = 8192;

/** Blocks in a file of `size` bytes (the last one may be short). */
export function blockCount(size: number): number {
  return Math.ceil(size / BLOCK_SIZE);
}
