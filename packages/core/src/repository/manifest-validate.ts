import { HarborError } from '../errors.js';
import { isBackupId } from './backup-id.js';
import { fileDigestProblem } from '../codec/file-digest.js';
import { MANIFEST_FORMAT_VERSION, type BackupManifest } from './manifest.js';
import { storedEntryProblem, storedPathProblem } from './stored-path.js';
import { maxBlockMapSize } from '../blocks/block-map.js';
import { isRelationFile } from '../blocks/relation-file.js';

/**
 * Structural validation of a manifest read from a repository, before
 * anything uses it. Whoever can write the repository (a shared mount, a
 * leaked S3 key) can write a manifest; restore joins its paths to the
 * target and trusts its tablespace list, so a manifest is taken only when
 * every path is one a data directory can hold (stored-path.ts), every
 * number is a sane non-negative integer, no path repeats or lies under a
 * file, and it says it is the backup, server and cluster where it was found.
 * An encrypted repository also authenticates the manifest's bytes
 * (repository-codec.ts); this is the part that holds in a plain one too.
 */
export class InvalidManifestError extends HarborError {
  constructor(
    readonly backupId: string,
    readonly where: string,
    readonly entry: string | undefined,
    readonly reason: string,
    /** The message and hint, when the refusal says more than "invalid" (manifest-codec.ts: not authenticated, damaged). */
    worded?: { message: string; hint: string },
  ) {
    super(worded?.message ?? `manifest of backup ${backupId} in ${where} is invalid: ${entry !== undefined ? `entry ${JSON.stringify(entry)}: ` : ''}${reason}`, {
      hint:
        worded?.hint ??
        'pgharbor did not write this manifest (or it is damaged) and will not use it; nothing was written. Check who can write the repository, and use another backup (pgharbor list-backups)',
    });
    this.name = 'InvalidManifestError';
  }
}

export interface ManifestPlace {
  /** The backup id of the directory the manifest was found in. */
  id: string;
  server: string;
  /** The repository, for messages: "repo1 (/var/lib/pgharbor)". */
  where: string;
  /** The system identifier of the repository's identity file, when it has one. */
  systemIdentifier?: string;
}

const STATUSES = new Set(['STARTED', 'DONE', 'FAILED']);
const TYPES = new Set(['full', 'incr', 'diff']);

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isAbsoluteLocation(value: unknown): value is string {
  return typeof value === 'string' && value.length > 1 && value.length <= 1024 && value.startsWith('/') && !/[\u0000-\u001f\u007f\\]/.test(value) && !value.split('/').slice(1).some((part) => part === '' || part === '.' || part === '..');
}

/**
 * Read a manifest (`read` gives its parsed JSON) and validate it. Bytes that
 * are not JSON at all (truncated, overwritten) are an invalid manifest too:
 * listings skip it instead of failing for every backup.
 */
export async function readValidManifest(read: () => Promise<unknown>, place: ManifestPlace): Promise<BackupManifest> {
  let value: unknown;
  try {
    value = await read();
  } catch (error) {
    if (error instanceof SyntaxError) throw new InvalidManifestError(place.id, place.where, undefined, `it is not valid JSON (${error.message})`);
    throw error;
  }
  return validateManifest(value, place);
}

/**
 * A block-mapped relation file (blocks/block-map.ts): the map lies inside
 * the file's stored span in its bundle and is no larger than a file of
 * this size can need, so a reader knows how much it may read before it
 * reads it. Format 1 readers would misread such a file: format 2 only.
 */
function checkBlockMapEntry(f: Record<string, unknown>, formatVersion: number, fail: (reason: string) => never): void {
  const map = f.blockMap as Record<string, unknown>;
  if (formatVersion < 2) fail('a block map in a format 1 manifest');
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail('blockMap is not an object');
  for (const key of ['offset', 'storedSize', 'size'] as const) if (!isCount(map[key])) fail(`blockMap.${key} is not a non-negative integer`);
  if (typeof map.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(map.sha256)) fail('blockMap.sha256 is not 64 hex digits');
  if (!isRelationFile(f.path as string) || (f.size as number) < 1) fail('only a relation file with bytes has a block map');
  if (f.bundle === undefined || f.object !== undefined || !isCount(f.storedSize)) fail('a block-mapped file must be stored in a bundle');
  const [offset, storedSize, size] = [map.offset as number, map.storedSize as number, map.size as number];
  if (size > maxBlockMapSize(f.size as number)) fail(`its block map claims ${size} bytes, more than a file of ${f.size} bytes can need`);
  if (offset < (f.offset as number) || offset + storedSize !== (f.offset as number) + (f.storedSize as number)) fail('its block map does not end the stored span of the file');
}

/** The manifest as a BackupManifest when it passes every rule; else an InvalidManifestError naming the first problem. */
export function validateManifest(value: unknown, place: ManifestPlace): BackupManifest {
  const fail = (reason: string, entry?: string): never => {
    throw new InvalidManifestError(place.id, place.where, entry, reason);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('it is not a JSON object');
  const m = value as Partial<BackupManifest> & Record<string, unknown>;

  // Where it was found: a manifest copied from another backup, server or cluster is not this backup.
  if (m.id !== place.id) fail(`it names backup ${JSON.stringify(m.id)}, but was found in the directory of ${place.id}`);
  if (!isBackupId(place.id)) fail('the backup id is not a pgharbor backup id');
  if (m.server !== place.server) fail(`it names server ${JSON.stringify(m.server)}, but was found under ${place.server}`);
  if (typeof m.systemIdentifier !== 'string' || !/^\d{1,20}$/.test(m.systemIdentifier)) fail('systemIdentifier is not a number');
  if (place.systemIdentifier !== undefined && m.systemIdentifier !== place.systemIdentifier) {
    fail(`it names cluster ${m.systemIdentifier}, but the repository's identity file says ${place.systemIdentifier}`);
  }
  if (!isCount(m.formatVersion) || m.formatVersion < 1 || m.formatVersion > MANIFEST_FORMAT_VERSION) fail(`format version ${JSON.stringify(m.formatVersion)} is not one this pgharbor reads`);
  if (!STATUSES.has(m.status as string)) fail(`status ${JSON.stringify(m.status)} is not STARTED, DONE or FAILED`);
  if (!TYPES.has(m.type as string)) fail(`type ${JSON.stringify(m.type)} is not full, incr or diff`);
  if (m.parent !== undefined && (typeof m.parent !== 'string' || !isBackupId(m.parent))) fail('parent is not a backup id');
  if (!isCount(m.pgVersion)) fail('pgVersion is not a number');
  if (typeof m.startTime !== 'string') fail('startTime is missing');
  if (typeof m.dataDirectory !== 'string') fail('dataDirectory is missing');
  for (const key of ['size', 'storedSize'] as const) if (!isCount(m[key])) fail(`${key} is not a non-negative integer`);
  if (m.reusedSize !== undefined && !isCount(m.reusedSize)) fail('reusedSize is not a non-negative integer');
  if (m.timeline !== undefined && (!isCount(m.timeline) || m.timeline < 1)) fail('timeline is not a positive integer');
  for (const key of ['startWal', 'stopWal'] as const) if (m[key] !== undefined && !/^[0-9A-F]{24}$/.test(String(m[key]))) fail(`${key} is not a WAL segment name`);

  if (!Array.isArray(m.tablespaces)) return fail('tablespaces is not a list');
  const oids = new Set<number>();
  const locations = new Set<string>();
  for (const space of m.tablespaces as unknown[]) {
    const s = space as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || !isCount(s.oid) || s.oid < 1 || s.oid > 0xffffffff) return fail('a tablespace has no valid oid');
    if (oids.has(s.oid)) fail(`tablespace oid ${s.oid} is listed twice`);
    if (typeof s.name !== 'string' || s.name === '') fail(`tablespace ${s.oid} has no name`);
    // Restore writes there unless --tablespace-map says otherwise: an absolute, normalised directory, never "/" or a repeat.
    if (!isAbsoluteLocation(s.location)) fail(`tablespace ${s.oid} has location ${JSON.stringify(s.location)}, not an absolute normalised path`);
    if (locations.has(s.location as string)) fail(`tablespace ${s.oid} shares its location with another tablespace`);
    oids.add(s.oid);
    locations.add(s.location as string);
  }

  if (!Array.isArray(m.bundles)) return fail('bundles is not a list');
  for (const bundle of m.bundles as unknown[]) {
    const b = bundle as Record<string, unknown>;
    if (typeof b !== 'object' || b === null || !isCount(b.id) || b.id < 1 || !isCount(b.storedSize)) fail('a bundle has no valid id or size');
  }

  if (!Array.isArray(m.files)) return fail('files is not a list');
  const types = new Map<string, string>();
  for (const file of m.files as unknown[]) {
    if (typeof file !== 'object' || file === null) return fail('a file entry is not an object');
    const f = file as Record<string, unknown>;
    const entry = typeof f.path === 'string' ? f.path : undefined;
    const problem = storedEntryProblem(f.path, f.type, oids);
    if (problem) fail(problem, entry);
    const p = entry!;
    if (types.has(p)) fail('the path is listed twice', p);
    types.set(p, f.type as string);
    for (const key of ['size', 'mtime', 'mode'] as const) if (!isCount(f[key])) fail(`${key} is not a non-negative integer`, p);
    if ((f.mode as number) > 0o7777) fail('mode has bits beyond 07777', p);
    if (f.type === 'symlink' && f.linkTarget !== undefined && typeof f.linkTarget !== 'string') fail('linkTarget is not a string', p);
    if (f.type !== 'file') continue;
    if (f.sha256 !== undefined && (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256))) fail('sha256 is not 64 hex digits', p);
    if (f.digest !== undefined) {
      // One recorded digest per file: two could disagree, and which one a reader trusted would decide what it accepts.
      if (f.sha256 !== undefined) fail('it records both digest and sha256', p);
      const digestProblem = fileDigestProblem(f.digest);
      if (digestProblem) fail(digestProblem, p);
    }
    if (f.bundle !== undefined && (!isCount(f.bundle) || f.bundle < 1)) fail('bundle is not a positive integer', p);
    for (const key of ['offset', 'storedSize'] as const) if (f[key] !== undefined && !isCount(f[key])) fail(`${key} is not a non-negative integer`, p);
    if (f.bundle !== undefined && !isCount(f.offset)) fail('a file stored in a bundle has no offset', p);
    if (f.bundle === undefined && f.object === undefined && f.size !== 0) fail('the file has bytes but no bundle or object to read them from', p);
    if (typeof f.compression !== 'string' || typeof f.encryption !== 'string') fail('compression or encryption is missing', p);
    // Both name a storage key: a reference must be a backup id, an object a plain relative path (no way into another backup's or server's keys).
    if (f.reference !== undefined && (typeof f.reference !== 'string' || !isBackupId(f.reference))) fail('reference is not a backup id', p);
    if (f.object !== undefined) {
      const objectProblem = storedPathProblem(f.object);
      if (objectProblem) fail(`its stored object name is invalid: ${objectProblem}`, p);
    }
    if (f.blockMap !== undefined) checkBlockMapEntry(f, m.formatVersion as number, (reason) => fail(reason, p));
  }
  // Nothing may lie under a file (it would be written through it, or fail half-way).
  for (const p of types.keys()) {
    for (let at = p.indexOf('/'); at !== -1; at = p.indexOf('/', at + 1)) {
      if (types.get(p.slice(0, at)) === 'file') fail(`it lies under ${p.slice(0, at)}, which is a file`, p);
    }
  }
  return value as BackupManifest;
}
