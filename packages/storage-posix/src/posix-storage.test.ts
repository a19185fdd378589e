import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeStorageConformance } from '@pgharbor/core/testing';
import plugin, { PosixStorage, createPosixStorage, posixStorageSchema } from './index.js';

const scratch = await mkdtemp(path.join(tmpdir(), 'pgharbor-posix-'));
let counter = 0;
const freshRoot = (): string => path.join(scratch, `repo-${++counter}`);

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describeStorageConformance('posix', {
  // The root does not exist yet: the driver creates it on first write.
  create: async () => createPosixStorage({ path: freshRoot() }),
  destroy: async (driver) => rm((driver as PosixStorage).root, { recursive: true, force: true }),
  reopen: async (driver) => createPosixStorage({ path: (driver as PosixStorage).root }),
});

describe('posix storage', () => {
  let root: string;
  let storage: PosixStorage;

  beforeEach(() => {
    root = freshRoot();
    storage = createPosixStorage({ path: root });
  });

  afterEach(async () => {
    await storage.close();
  });

  it('putFile copies a local file atomically, 0600, and create-only refuses an existing key', async () => {
    const source = path.join(scratch, `source-${counter}`);
    await writeFile(source, Buffer.alloc(3 * 1024 * 1024, 7), { mode: 0o644 });
    expect(await storage.putFile('w/seg', source, { ifNotExists: true })).toEqual({ size: 3 * 1024 * 1024 });
    expect((await stat(path.join(root, 'w/seg'))).mode & 0o777).toBe(0o600);
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.get('w/seg')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(Buffer.alloc(3 * 1024 * 1024, 7))).toBe(true);
    await expect(storage.putFile('w/seg', source, { ifNotExists: true })).rejects.toThrow(/exists/);
    await expect(storage.putFile('w/other', path.join(scratch, 'missing'))).rejects.toThrow();
    expect((await readdir(path.join(root, 'w'))).sort()).toEqual(['seg']);
  });

  it('stageFile copies before the key is known: commit publishes it like putFile, discard and failures leave nothing', async () => {
    const source = path.join(scratch, `staged-${counter}`);
    await writeFile(source, Buffer.alloc(3 * 1024 * 1024, 9), { mode: 0o644 });
    const staged = storage.stageFile('w/x/', source);
    const listed: string[] = [];
    for await (const object of storage.list('w/')) listed.push(object.key);
    expect(listed).toEqual([]); // in progress: invisible
    await expect(staged.commit('w/elsewhere/seg')).rejects.toThrow(/not directly under/);
    expect(await staged.commit('w/x/seg', { ifNotExists: true })).toEqual({ size: 3 * 1024 * 1024 });
    expect((await stat(path.join(root, 'w/x/seg'))).mode & 0o777).toBe(0o600);
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.get('w/x/seg')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(Buffer.alloc(3 * 1024 * 1024, 9))).toBe(true);
    await staged.discard(); // after commit: nothing to drop

    const again = storage.stageFile('w/x/', source);
    await expect(again.commit('w/x/seg', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
    const dropped = storage.stageFile('w/x/', source);
    await dropped.discard();
    await expect(dropped.commit('w/x/other')).rejects.toThrow(/discarded/);
    await expect(storage.stageFile('w/x/', path.join(scratch, 'missing')).commit('w/x/missing')).rejects.toThrow();
    expect(await readdir(path.join(root, 'w/x'))).toEqual(['seg']);
  });

  it('creates files 0600 and directories 0700', async () => {
    await storage.put('a/b/object', 'x');
    await storage.put('a/b/created-only', Readable.from([Buffer.from('y')]), { ifNotExists: true });
    expect((await stat(path.join(root, 'a/b/object'))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(root, 'a/b/created-only'))).mode & 0o777).toBe(0o600);
    for (const dir of ['', 'a', 'a/b']) {
      expect((await stat(path.join(root, dir))).mode & 0o777, `mode of "${dir}"`).toBe(0o700);
    }
  });

  it('stores object "a/b/c" as the file <root>/a/b/c', async () => {
    await storage.put('a/b/c', 'content');
    expect(await readdir(path.join(root, 'a/b'))).toEqual(['c']);
  });

  it('leaves no temp file behind after a failed put', async () => {
    await storage.put('dir/keep', 'kept');
    const body = Readable.from(
      (async function* () {
        yield Buffer.alloc(100_000, 1);
        throw new Error('source failed');
      })(),
    );
    await expect(storage.put('dir/object', body)).rejects.toThrow('source failed');
    expect(await readdir(path.join(root, 'dir'))).toEqual(['keep']);
  });

  it('leaves no temp file behind after a create-only put loses', async () => {
    await storage.put('dir/lock', 'first');
    await storage.put('dir/other', 'x');
    // Bypass the early existence check: only link(2) stands in the way.
    const racing = createPosixStorage({ path: root });
    const originalStat = racing.stat.bind(racing);
    racing.stat = async (key) => (key === 'dir/lock' ? undefined : originalStat(key));
    await expect(racing.put('dir/lock', 'second', { ifNotExists: true })).rejects.toMatchObject({ name: 'StorageConflictError' });
    expect((await readdir(path.join(root, 'dir'))).sort()).toEqual(['lock', 'other']);
  });

  it('does not list temp files of writes in progress or left by a crash', async () => {
    await storage.put('dir/object', 'x');
    await writeFile(path.join(root, 'dir', `.object.tmp-${process.pid}-abcdef`), 'partial');
    const keys: string[] = [];
    for await (const info of storage.list('')) keys.push(info.key);
    expect(keys).toEqual(['dir/object']);
  });

  it('removes directories left empty by delete, but not the root', async () => {
    await storage.put('a/b/c/object', 'x');
    await storage.put('a/other', 'y');
    await storage.delete('a/b/c/object');
    expect(await readdir(root)).toEqual(['a']);
    expect(await readdir(path.join(root, 'a'))).toEqual(['other']);
    await storage.delete('a/other');
    expect(await readdir(root)).toEqual([]);
  });

  it('reports an unusable root with its path, the OS error and a hint', async () => {
    // We may run as root, for whom EACCES never happens: use a root whose parent is a file.
    const file = path.join(scratch, `not-a-directory-${++counter}`);
    await writeFile(file, 'x');
    const blocked = createPosixStorage({ path: path.join(file, 'repo') });
    const error = await blocked.put('object', 'x').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(path.join(file, 'repo'));
    expect((error as Error).message).toContain('ENOTDIR');
    expect((error as { hint?: string }).hint).toMatch(/permissions/);
    // Reads of an unusable root simply find nothing.
    expect(await blocked.stat('object')).toBeUndefined();
  });

  it('requires an absolute path', () => {
    expect(() => createPosixStorage({ path: 'relative/repo' })).toThrow(/not absolute/);
    expect(() => createPosixStorage({ path: '' })).toThrow(/needs a "path"/);
  });

  it('normalizes the root and uses it as location', () => {
    const driver = createPosixStorage({ path: `${root}/./sub/../` });
    expect(driver.root).toBe(root);
    expect(driver.location).toBe(root);
    expect(driver.type).toBe('posix');
  });

  it('rejects list prefixes that would leave the root', async () => {
    const list = async (prefix: string) => {
      for await (const _ of storage.list(prefix)) {
        // drain
      }
    };
    await expect(list('../')).rejects.toThrow(/invalid storage prefix/);
    await expect(list('a/../../')).rejects.toThrow(/invalid storage prefix/);
    await expect(list('/etc/')).rejects.toThrow(/invalid storage prefix/);
  });

  it('registers the "posix" storage type through the plugin', () => {
    const registered = new Map<string, { schema: unknown; create: (options: unknown) => unknown }>();
    const harbor = { storage: { register: (type: string, entry: { schema: unknown; create: (options: unknown) => unknown }) => registered.set(type, entry) } };
    plugin.apply(harbor as never);
    expect(plugin.name).toBe('storage-posix');
    expect(registered.get('posix')?.schema).toBe(posixStorageSchema);
    expect(registered.get('posix')?.create({ path: root })).toBeInstanceOf(PosixStorage);
  });
});
