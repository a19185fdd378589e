import { describe, expect, it } from 'vitest';
import { InvalidManifestError, readValidManifest, validateManifest, type ManifestPlace } from './manifest-validate.js';
import { storedEntryProblem, storedPathProblem } from './stored-path.js';
import type { BackupManifest, ManifestFile } from './manifest.js';

const SHA = 'a'.repeat(64);
const place: ManifestPlace = { id: '20261207T120000', server: 'pg', where: 'repo1 (/repo)', systemIdentifier: '7400000000000000001' };

function file(path: string, extra: Partial<ManifestFile> = {}): ManifestFile {
  return { path, type: 'file', size: 3, mtime: 1_700_000_000, mode: 0o600, sha256: SHA, bundle: 1, offset: 0, storedSize: 3, compression: 'none', encryption: 'none', ...extra };
}
const dir = (path: string, extra: Partial<ManifestFile> = {}): ManifestFile => ({ path, type: 'directory', size: 0, mtime: 1_700_000_000, mode: 0o700, compression: 'none', encryption: 'none', ...extra });
const link = (path: string, linkTarget = '/srv/space'): ManifestFile => ({ path, type: 'symlink', size: 0, mtime: 1_700_000_000, mode: 0o777, linkTarget, compression: 'none', encryption: 'none' });

function manifest(files: ManifestFile[], extra: Partial<BackupManifest> = {}): BackupManifest {
  return {
    formatVersion: 1,
    id: place.id,
    server: 'pg',
    status: 'DONE',
    type: 'full',
    method: 'basebackup',
    label: 'x',
    startTime: '2026-12-07T12:00:00.000Z',
    startWal: '000000010000000000000002',
    timeline: 1,
    pgVersion: 150010,
    systemIdentifier: place.systemIdentifier!,
    dataDirectory: '/var/lib/postgresql/15/main',
    tablespaces: [{ oid: 16385, name: 'extra', location: '/srv/space' }],
    walIncluded: true,
    files: [dir('base'), dir('base/1'), file('base/1/1259'), dir('pg_tblspc'), link('pg_tblspc/16385'), dir('pg_tblspc/16385/PG_15_202209061'), file('pg_tblspc/16385/PG_15_202209061/5/16386'), dir('pg_wal'), file('PG_VERSION'), ...files],
    bundles: [{ id: 1, storedSize: 9 }],
    size: 9,
    storedSize: 9,
    pgharborVersion: '0.0.0',
    ...extra,
  };
}

function rejection(value: unknown, where: ManifestPlace = place): string | undefined {
  try {
    validateManifest(value, where);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidManifestError);
    return (error as Error).message;
  }
}

describe('stored paths', () => {
  it.each<[unknown, string | undefined]>([
    ['base/1/1259', undefined],
    ['postgresql.auto.conf', undefined],
    ['log/postgresql-Mon.log', undefined], // what PostgreSQL's default log_directory holds: sent by BASE_BACKUP, restored
    ['pg_tblspc/16385/PG_15_202209061/5/16386', undefined],
    ['../../x', 'the path has a ".." part'],
    ['base/../../x', 'the path has a ".." part'],
    ['./base', 'the path has a "." part'],
    ['/etc/passwd', 'the path is absolute'],
    ['//etc/passwd', 'the path is absolute'],
    ['base//1', 'the path has an empty part ("//" or a trailing "/")'],
    ['base/', 'the path has an empty part ("//" or a trailing "/")'],
    ['', 'the path is empty'],
    ['base/1\u0000/etc', 'the path contains a control character (NUL, newline…)'],
    ['base/1\n2', 'the path contains a control character (NUL, newline…)'],
    ['..\\..\\x', 'the path contains a backslash'],
    ['base\\..\\..\\x', 'the path contains a backslash'],
    ['x'.repeat(256), 'a part of the path is longer than 255 bytes'],
    [`${'d/'.repeat(600)}x`, 'the path is longer than 1024 bytes'],
    ['pgharbor_wal/000000010000000000000002', 'the path uses a name pgharbor reserves for its own files (pgharbor_wal)'],
    ['global/pg_control.pgharbor-delta', 'the path uses a name pgharbor reserves for its own files (".pgharbor-")'],
    [42, 'the path is not a string'],
  ])('%j → %s', (p, problem) => {
    expect(storedPathProblem(p)).toBe(problem);
  });
});

describe('stored entries: links only where PostgreSQL has them', () => {
  const spaces = new Set([16385]);
  it.each<[string, unknown, string | undefined]>([
    ['pg_tblspc/16385', 'symlink', undefined],
    ['pg_tblspc/16385', 'directory', undefined], // verify's copy and rsync trees hold it as a directory
    ['pg_wal', 'symlink', undefined], // initdb --waldir: restored as a plain directory
    ['pg_tblspc/16386', 'symlink', 'pg_tblspc/16386 is not a tablespace of this backup'],
    ['pg_tblspc/16386/PG_15_1/5/1', 'file', 'pg_tblspc/16386 is not a tablespace of this backup'],
    ['pg_tblspc/016385', 'symlink', 'pg_tblspc/016385 is not a tablespace of this backup'],
    ['pg_tblspc/evil', 'symlink', 'pg_tblspc/evil is not a tablespace of this backup'],
    ['pg_tblspc/16385', 'file', 'a tablespace entry in pg_tblspc must be a link or a directory'],
    ['pg_tblspc', 'symlink', 'pg_tblspc must be a directory'],
    ['evil', 'symlink', 'a link outside pg_tblspc/<oid> and pg_wal (PostgreSQL has none elsewhere)'],
    ['base/1/1259', 'symlink', 'a link outside pg_tblspc/<oid> and pg_wal (PostgreSQL has none elsewhere)'],
    ['pg_wal/archive_status', 'symlink', 'a link outside pg_tblspc/<oid> and pg_wal (PostgreSQL has none elsewhere)'],
    ['base/1/1259', 'hardlink', 'its type "hardlink" is not file, directory or symlink'],
    ['base/1/1259', 'fifo', 'its type "fifo" is not file, directory or symlink'],
  ])('%s (%s) → %s', (p, type, problem) => {
    expect(storedEntryProblem(p, type, spaces)).toBe(problem);
  });

  it('at ingest, any tablespace oid is taken (the finished manifest is checked against its list)', () => {
    expect(storedEntryProblem('pg_tblspc/99999/PG_15_1/5/1', 'file', 'any')).toBeUndefined();
    expect(storedEntryProblem('pg_tblspc/evil/x', 'file', 'any')).toBe('pg_tblspc/evil is not a tablespace of this backup');
  });
});

describe('validateManifest', () => {
  it('takes a manifest as pgharbor writes it', () => {
    const good = manifest([]);
    expect(validateManifest(good, place)).toBe(good);
    expect(validateManifest(manifest([], { status: 'STARTED', files: [], bundles: [] }), place)).toBeDefined();
  });

  it('takes a per-file digest of each known algorithm, and the sha256 of manifests written before', () => {
    const files = [file('base/1/2', { sha256: undefined, digest: `blake3:${SHA}` }), file('base/1/3', { sha256: undefined, digest: `sha256:${SHA}` }), file('base/1/4')];
    expect(validateManifest(manifest(files), place).files.map((f) => f.path)).toContain('base/1/4');
  });

  it.each<[string, BackupManifest | unknown, string]>([
    ['a traversal name', manifest([file('../../x')]), 'entry "../../x": the path has a ".." part'],
    ['an absolute name', manifest([file('/etc/cron.d/x')]), 'entry "/etc/cron.d/x": the path is absolute'],
    ['a link, then a file through it', manifest([link('evil', '/tmp'), file('evil/pwned')]), 'entry "evil": a link outside pg_tblspc/<oid> and pg_wal'],
    ['a link planted beside a tablespace link', manifest([link('pg_tblspc/16386', '/etc'), file('pg_tblspc/16386/x')]), 'entry "pg_tblspc/16386": pg_tblspc/16386 is not a tablespace of this backup'],
    ['a duplicate entry', manifest([file('PG_VERSION')]), 'entry "PG_VERSION": the path is listed twice'],
    ['a file under a file', manifest([file('PG_VERSION/x')]), 'entry "PG_VERSION/x": it lies under PG_VERSION, which is a file'],
    ['a negative size', manifest([file('base/1/2', { size: -1 })]), 'entry "base/1/2": size is not a non-negative integer'],
    ['a fractional offset', manifest([file('base/1/2', { offset: 1.5 })]), 'entry "base/1/2": offset is not a non-negative integer'],
    ['a huge mode', manifest([file('base/1/2', { mode: 0o170777 })]), 'entry "base/1/2": mode has bits beyond 07777'],
    ['a mode as text', manifest([file('base/1/2', { mode: '0600' as unknown as number })]), 'entry "base/1/2": mode is not a non-negative integer'],
    ['a bad checksum', manifest([file('base/1/2', { sha256: 'zz' })]), 'entry "base/1/2": sha256 is not 64 hex digits'],
    ['an unknown digest algorithm', manifest([file('base/1/2', { sha256: undefined, digest: `md5:${'a'.repeat(32)}` })]), 'entry "base/1/2": digest algorithm "md5" is not one pgharbor knows (blake3, sha256, blake3-blocks)'],
    ['a digest with no algorithm', manifest([file('base/1/2', { sha256: undefined, digest: SHA })]), 'entry "base/1/2": digest algorithm "" is not one pgharbor knows (blake3, sha256, blake3-blocks)'],
    ['a short digest', manifest([file('base/1/2', { sha256: undefined, digest: `blake3:${'a'.repeat(63)}` })]), 'entry "base/1/2": blake3 digest is not 64 lower-case hex digits'],
    ['a long digest', manifest([file('base/1/2', { sha256: undefined, digest: `blake3:${'a'.repeat(65)}` })]), 'entry "base/1/2": blake3 digest is not 64 lower-case hex digits'],
    ['an upper-case digest', manifest([file('base/1/2', { sha256: undefined, digest: `sha256:${'A'.repeat(64)}` })]), 'entry "base/1/2": sha256 digest is not 64 lower-case hex digits'],
    ['a digest that is not text', manifest([file('base/1/2', { sha256: undefined, digest: 7 as unknown as string })]), 'entry "base/1/2": digest is not a string'],
    ['two digests', manifest([file('base/1/2', { digest: `blake3:${SHA}` })]), 'entry "base/1/2": it records both digest and sha256'],
    ['bytes with no place to read them', manifest([file('base/1/2', { bundle: undefined, offset: undefined })]), 'entry "base/1/2": the file has bytes but no bundle or object to read them from'],
    ['an object key escaping its tree', manifest([file('base/1/2', { bundle: undefined, object: '../../../other/identity.json' })]), 'entry "base/1/2": its stored object name is invalid: the path has a ".." part'],
    ['a reference that is not a backup id', manifest([file('base/1/2', { reference: '../x' })]), 'entry "base/1/2": reference is not a backup id'],
    ['a device', manifest([{ ...file('base/1/2'), type: 'device' as 'file' }]), 'entry "base/1/2": its type "device" is not file, directory or symlink'],
    ['another backup id', manifest([], { id: '20991231T235959' }), 'it names backup "20991231T235959", but was found in the directory of 20261207T120000'],
    ['another server', manifest([], { server: 'other' }), 'it names server "other", but was found under pg'],
    ['another cluster', manifest([], { systemIdentifier: '7400000000000000002' }), "it names cluster 7400000000000000002, but the repository's identity file says 7400000000000000001"],
    ['a tablespace at /', manifest([], { tablespaces: [{ oid: 16385, name: 'extra', location: '/' }] }), 'tablespace 16385 has location "/", not an absolute normalised path'],
    ['a relative tablespace', manifest([], { tablespaces: [{ oid: 16385, name: 'extra', location: 'srv/../x' }] }), 'tablespace 16385 has location "srv/../x", not an absolute normalised path'],
    ['a tablespace with ..', manifest([], { tablespaces: [{ oid: 16385, name: 'extra', location: '/srv/../etc' }] }), 'tablespace 16385 has location "/srv/../etc", not an absolute normalised path'],
    ['two tablespaces in one place', manifest([], { tablespaces: [{ oid: 16385, name: 'a', location: '/srv/space' }, { oid: 16386, name: 'b', location: '/srv/space' }] }), 'tablespace 16386 shares its location with another tablespace'],
    ['an unknown status', manifest([], { status: 'OK' as 'DONE' }), 'status "OK" is not STARTED, DONE or FAILED'],
    ['a newer format', manifest([], { formatVersion: 99 }), 'format version 99 is not one this pgharbor reads'],
    ['no file list', { ...manifest([]), files: 'x' }, 'files is not a list'],
    ['not an object', [1, 2], 'it is not a JSON object'],
  ])('refuses %s', (_what, value, message) => {
    const refused = rejection(value);
    expect(refused).toContain(`manifest of backup ${place.id} in repo1 (/repo) is invalid: `);
    expect(refused).toContain(message);
  });

  it('bytes that are not JSON are an invalid manifest (listings skip it); other read errors stay what they are', async () => {
    await expect(readValidManifest(async () => JSON.parse('{"id": "2026'), place)).rejects.toThrow(/manifest of backup 20261207T120000 in repo1 \(\/repo\) is invalid: it is not valid JSON/);
    await expect(readValidManifest(async () => JSON.parse('{"id": "2026'), place)).rejects.toBeInstanceOf(InvalidManifestError);
    await expect(readValidManifest(() => Promise.reject(new Error('ECONNRESET')), place)).rejects.not.toBeInstanceOf(InvalidManifestError);
  });

  it('checks the cluster only where the repository has an identity file', () => {
    expect(rejection(manifest([], { systemIdentifier: '7400000000000000002' }), { ...place, systemIdentifier: undefined })).toBeUndefined();
  });

  it('stays linear on a big manifest (about 1 µs a path here; generous bound for a loaded machine)', () => {
    const files = Array.from({ length: 20_000 }, (_, i) => file(`base/1/${100000 + i}`));
    const started = performance.now();
    validateManifest(manifest(files), place);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});

describe('block-mapped files and chains', () => {
  const mapped = (extra: Partial<ManifestFile> = {}, map: Record<string, unknown> = {}) =>
    file('base/1/16384', { size: 16384, offset: 100, storedSize: 500, blockMap: { offset: 400, storedSize: 200, size: 150, sha256: SHA, ...map } as ManifestFile['blockMap'], ...extra });
  it.each<[string, ManifestFile, Partial<BackupManifest>, string | undefined]>([
    ['a sound block map', mapped(), { formatVersion: 2 }, undefined],
    ['in a format 1 manifest', mapped(), {}, 'a block map in a format 1 manifest'],
    ['a map on a non-relation file', { ...mapped(), path: 'PG_VERSION2' }, { formatVersion: 2 }, 'only a relation file with bytes has a block map'],
    ['a map that does not end the span', mapped({}, { offset: 300 }), { formatVersion: 2 }, 'its block map does not end the stored span of the file'],
    ['a map larger than the file can need', mapped({ storedSize: 10_000_300 }, { offset: 100, storedSize: 10_000_300, size: 10_000_000 }), { formatVersion: 2 }, 'more than a file of 16384 bytes can need'],
    ['a map with a bad sha256', mapped({}, { sha256: 'x' }), { formatVersion: 2 }, 'blockMap.sha256 is not 64 hex digits'],
    ['a map with a negative size', mapped({}, { size: -1 }), { formatVersion: 2 }, 'blockMap.size is not a non-negative integer'],
    ['a map outside a bundle', mapped({ bundle: undefined, object: 'base/1/16384' }), { formatVersion: 2 }, 'a block-mapped file must be stored in a bundle'],
    ['a parent that is not a backup id', mapped(), { formatVersion: 2, type: 'incr', parent: '../x' }, 'parent is not a backup id'],
    ['a newer format', mapped(), { formatVersion: 3 }, 'format version 3 is not one this pgharbor reads'],
  ])('%s', (_name, entry, extra, problem) => {
    const message = rejection(manifest([entry], extra));
    if (problem === undefined) expect(message).toBeUndefined();
    else expect(message).toContain(problem);
  });
});
