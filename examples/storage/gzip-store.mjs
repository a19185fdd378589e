// A complete pgharbor storage plugin: a repository in a local directory
// where every object is stored gzip-compressed, as `<path>/<key>.gz`. Any
// object can be read back with plain `zcat`, and backups take less disk.
//
// It is plain ESM JavaScript with no dependency beyond Node itself (no
// build step, no import from pgharbor) and passes the same conformance
// suite as pgharbor's own drivers. docs/writing-a-storage-plugin.md walks
// through it.
//
//   plugins: [./examples/storage/gzip-store.mjs]
//   servers:
//     pga:
//       repositories:
//         - { type: gzip, path: /var/lib/pgharbor-gz, level: 1 }
//
// Limits, on purpose, to stay small: objects up to 4 GiB (gzip records
// sizes modulo 2^32; pgharbor's bundles are ~128 MiB, WAL segments ≤ 1 GiB),
// and a ranged read decompresses from the start of the object.
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';

const SUFFIX = '.gz';
const MAX_SIZE = 2 ** 32 - 1;

// 1. The errors the contract names. The core recognises them by `name`, so a
//    plugin defines its own instead of importing pgharbor's classes.
class StorageNotFoundError extends Error {
  constructor(key, location) {
    super(`${location}: object "${key}" does not exist`);
    this.name = 'StorageNotFoundError';
    this.key = key;
  }
}

class StorageConflictError extends Error {
  constructor(key, location) {
    super(`${location}: object "${key}" already exists`);
    this.name = 'StorageConflictError';
    this.key = key;
  }
}

// 2. Keys are relative paths: refuse anything that could leave the root.
function assertValidKey(key) {
  if (typeof key !== 'string' || key === '' || key.startsWith('/') || key.endsWith('/') || key.includes('//') || key.includes('\0') ||
      key.split('/').some((part) => part === '.' || part === '..')) {
    throw new Error(`invalid storage key "${key}"`);
  }
}

// 3. The driver: put / get / stat / list / delete / close.
class GzipStore {
  constructor({ path: root, level = 1 }) {
    if (!path.isAbsolute(root)) throw new Error(`gzip store: path "${root}" is not absolute`);
    this.type = 'gzip';
    this.root = path.resolve(root);
    this.location = `gzip:${this.root}`;
    this.level = level;
  }

  fileOf(key) {
    return path.join(this.root, ...key.split('/')) + SUFFIX;
  }

  // Atomic: compress into a temp file next to the final name, fsync, then
  // rename it over the final name — or, create-only, link(2) it, which
  // fails when the name exists, so exactly one of racing writers wins.
  async put(key, body, { ifNotExists = false } = {}) {
    const source = typeof body === 'string' || body instanceof Uint8Array ? Readable.from([Buffer.from(body)]) : body;
    try {
      assertValidKey(key);
      if (ifNotExists && (await this.stat(key))) throw new StorageConflictError(key, this.location);
      const file = this.fileOf(key);
      const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${randomBytes(6).toString('hex')}`);
      const handle = await createTemp(temp);
      let size = 0;
      const count = new Transform({
        transform(chunk, _encoding, done) {
          size += chunk.length;
          done(size > MAX_SIZE ? new Error(`gzip store: object "${key}" is larger than 4 GiB`) : null, chunk);
        },
      });
      try {
        try {
          // pipeline() streams with backpressure, and destroys everything if any part fails.
          await pipeline(source, count, createGzip({ level: this.level }), async (compressed) => {
            for await (const chunk of compressed) await handle.write(chunk);
          });
          await handle.sync();
        } finally {
          await handle.close();
        }
        if (ifNotExists) {
          await link(temp, file).catch((error) => {
            throw error.code === 'EEXIST' ? new StorageConflictError(key, this.location) : error;
          });
          await unlink(temp);
        } else {
          await rename(temp, file);
        }
      } catch (error) {
        await unlink(temp).catch(() => {});
        throw error;
      }
      return { size };
    } catch (error) {
      source.destroy?.();
      throw error;
    }
  }

  // Streaming: decompress on the fly, skip to the range, stop at its end.
  async get(key, range) {
    assertValidKey(key);
    const file = this.fileOf(key);
    const handle = await open(file, 'r').catch((error) => {
      throw error.code === 'ENOENT' || error.code === 'ENOTDIR' ? new StorageNotFoundError(key, this.location) : error;
    });
    // The open handle pins this version: an overwrite meanwhile does not change what we read.
    const compressed = handle.createReadStream();
    const plain = compressed.pipe(createGunzip());
    compressed.on('error', (error) => plain.destroy(error));
    plain.on('close', () => compressed.destroy());
    if (!range) return plain;
    return Readable.from(slice(plain, range.offset, range.length ?? Infinity), { objectMode: false });
  }

  async stat(key) {
    assertValidKey(key);
    try {
      const info = await stat(this.fileOf(key));
      return info.isFile() ? { key, size: await originalSize(this.fileOf(key), info.size), mtime: info.mtime } : undefined;
    } catch (error) {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  // Plain string prefixes: "a/b" matches "a/b/c" and "a/bc". Read only the
  // directory that can hold matches, then everything below matching entries.
  async *list(prefix) {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash === -1 ? '' : prefix.slice(0, slash);
    if (prefix.startsWith('/') || prefix.includes('\0') || (dirKey && dirKey.split('/').some((p) => p === '.' || p === '..' || p === ''))) {
      throw new Error(`invalid storage prefix "${prefix}"`);
    }
    yield* this.walk(dirKey, prefix.slice(slash + 1));
  }

  async *walk(dirKey, namePrefix) {
    const dir = dirKey ? path.join(this.root, ...dirKey.split('/')) : this.root;
    const entries = await readdir(dir, { withFileTypes: true }).catch((error) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return [];
      throw error;
    });
    for (const entry of entries) {
      // Temp files (".<name>.gz.tmp-<random>") do not end in .gz: writes in progress stay invisible.
      const isObject = entry.isFile() && entry.name.endsWith(SUFFIX);
      const name = isObject ? entry.name.slice(0, -SUFFIX.length) : entry.name;
      if (!name.startsWith(namePrefix)) continue;
      const key = dirKey ? `${dirKey}/${name}` : name;
      if (entry.isDirectory()) yield* this.walk(key, '');
      else if (isObject) yield await this.stat(key);
    }
  }

  async delete(key) {
    assertValidKey(key);
    const file = this.fileOf(key);
    try {
      await unlink(file);
    } catch (error) {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return;
      throw error;
    }
    // Tidy up: remove directories the delete left empty (never the root).
    for (let dir = path.dirname(file); dir.startsWith(this.root + path.sep); dir = path.dirname(dir)) {
      if (!(await rmdir(dir).then(() => true, () => false))) break;
    }
  }

  async close() {
    // Nothing to release: every get owns its file handle.
  }
}

// mkdir -p (0700), then create the temp file (0600). A concurrent delete may
// remove a directory it just emptied between the two steps: try again.
async function createTemp(temp) {
  for (let attempt = 1; ; attempt++) {
    try {
      await mkdir(path.dirname(temp), { recursive: true, mode: 0o700 });
      return await open(temp, 'wx', 0o600);
    } catch (error) {
      if (error.code !== 'ENOENT' || attempt >= 10) throw error;
    }
  }
}

// gzip ends with ISIZE: the uncompressed size modulo 2^32 (little endian).
async function originalSize(file, compressedSize) {
  const handle = await open(file, 'r');
  try {
    const { buffer } = await handle.read(Buffer.alloc(4), 0, 4, compressedSize - 4);
    return buffer.readUInt32LE(0);
  } finally {
    await handle.close();
  }
}

async function* slice(stream, offset, length) {
  let skip = offset;
  let left = length;
  for await (let chunk of stream) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    chunk = chunk.subarray(skip, skip + left);
    skip = 0;
    left -= chunk.length;
    if (chunk.length > 0) yield chunk;
    if (left === 0) return; // leaving the loop stops the decompression
  }
}

// 4. The plugin: register the "gzip" storage type with the JSON schema of
//    its repository options. pgharbor validates every repository entry
//    against it before anything runs, and resolves "format: path" options
//    relative to the config file.
export default function gzipStorePlugin() {
  return {
    name: 'example-gzip-store',
    apply(harbor) {
      harbor.storage.register('gzip', {
        schema: {
          type: 'object',
          properties: {
            path: { type: 'string', minLength: 1, format: 'path', description: 'directory of the repository' },
            level: { type: 'integer', minimum: 1, maximum: 9, description: 'gzip level: 1 fast … 9 small' },
          },
          required: ['path'],
        },
        create: (options) => new GzipStore(options),
      });
    },
  };
}
