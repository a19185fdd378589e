import type { Readable } from 'node:stream';
import type { StoredEntry } from './incremental-store.js';
import type { ManifestFile } from '../repository/manifest.js';
import type { IngestOptions } from './backup-method.js';
import { readTar } from './tar-reader.js';
import { incrementalTarget } from '../blocks/incremental-file.js';
import { HarborError } from '../errors.js';
import { storedEntryProblem } from '../repository/stored-path.js';

/**
 * Turn a tar stream (what PostgreSQL's BASE_BACKUP sends) into stored
 * files and manifest entries, as it arrives: the backup never lands on
 * local disk and memory stays bounded by the stream buffers.
 */
export async function ingestTar(
  tar: Readable,
  store: (source: AsyncIterable<Buffer> | Buffer[], size: number, path: string) => Promise<StoredEntry>,
  storeIncremental: (source: AsyncIterable<Buffer> | Buffer[], size: number, path: string) => Promise<StoredEntry>,
  onEntry: (file: ManifestFile, reusedBytes?: number) => void,
  options: IngestOptions = {},
): Promise<Map<string, Buffer>> {
  const captured = new Map<string, Buffer>();
  const capture = new Set(options.capture ?? []);
  const skip = new Set(options.skip ?? []);

  // Stopping early (a storage failure) must not destroy the stream: pg_basebackup
  // would die of SIGPIPE and its death would hide the real cause. The method ends it,
  // and an error the stream reports after that (the child killed) must not crash us:
  // while we read, the iterator reports errors itself.
  tar.on('error', () => {});
  for await (const { header, body } of readTar(tar.iterator({ destroyOnReturn: false }))) {
    const name = normalizeTarPath(header.name);
    const path = options.pathPrefix ? (name ? `${options.pathPrefix}/${name}` : options.pathPrefix) : name;
    if (header.type !== 'other' && path !== '') checkStreamEntry(path, header.type, header.name);
    const base = {
      path,
      size: 0,
      mtime: header.mtime,
      mode: header.mode,
      compression: 'none',
      encryption: 'none',
    };
    if (header.type === 'file') {
      let source: AsyncIterable<Buffer> | Buffer[] = body;
      if (capture.has(path)) {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk);
        const rewrite = options.rewrite?.[path];
        const content = Buffer.concat(chunks);
        captured.set(path, rewrite ? rewrite(content) : content);
        source = [captured.get(path)!];
      }
      if (skip.has(path)) continue; // the reader skips what was not read
      const target = options.incrementalFiles ? incrementalTarget(path) : undefined;
      if (target !== undefined) {
        const { stored, reusedBytes } = await storeIncremental(source, header.size, target);
        onEntry({ ...base, path: target, type: 'file', ...stored }, reusedBytes);
        continue;
      }
      const size = captured.has(path) ? captured.get(path)!.length : header.size;
      const { stored, reusedBytes } = await store(source, size, path);
      onEntry({ ...base, type: 'file', ...stored }, reusedBytes);
    } else if (header.type === 'directory') {
      if (path) onEntry({ ...base, type: 'directory' });
    } else if (header.type === 'symlink') {
      onEntry({ ...base, type: 'symlink', linkTarget: header.linkname });
    }
    // PostgreSQL sends only files, directories and symlinks: anything else is ignored.
  }
  return captured;
}

/**
 * The server's stream is another party's output (DESIGN.md, "Trust
 * boundaries"): a name that no data directory can hold fails the backup
 * here, before its bytes are stored, with the rule every manifest reader
 * applies (stored-path.ts), so that a backup taken is a backup restore takes.
 * Tablespace oids are checked against the backup's list once it is complete.
 */
function checkStreamEntry(path: string, type: 'file' | 'directory' | 'symlink', rawName: string): void {
  const problem = storedEntryProblem(path, type, 'any');
  if (!problem) return;
  throw new HarborError(`the server's backup stream has an entry ${JSON.stringify(rawName)} that pgharbor will not store: ${problem}`, {
    hint:
      type === 'symlink'
        ? 'PostgreSQL sends links in the data directory as they are, and restore makes links only for tablespaces: replace the link by the file or directory it points to, then back up again'
        : 'a PostgreSQL server sends only relative, normalised paths: check what answers on the streaming connection; the backup is marked FAILED',
  });
}

function normalizeTarPath(name: string): string {
  return name.replace(/^\.\//, '').replace(/\/+$/, '');
}
