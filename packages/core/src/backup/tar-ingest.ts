import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import type { BundleWriter } from '../repository/bundle-writer.js';
import type { ManifestFile } from '../repository/manifest.js';
import type { IngestOptions } from './backup-method.js';

/**
 * Turn a tar stream (what PostgreSQL's BASE_BACKUP sends) into stored
 * files and manifest entries, as it arrives: the backup never lands on
 * local disk and memory stays bounded by the stream buffers.
 */
export async function ingestTar(
  tar: Readable,
  writer: BundleWriter,
  onEntry: (file: ManifestFile) => void,
  options: IngestOptions = {},
): Promise<Map<string, Buffer>> {
  const captured = new Map<string, Buffer>();
  const capture = new Set(options.capture ?? []);
  const skip = new Set(options.skip ?? []);
  const extract = tarExtract();
  tar.on('error', (error) => extract.destroy(error));
  tar.pipe(extract);

  for await (const entry of extract) {
    const header: Header = entry.header;
    const name = normalizeTarPath(header.name);
    const path = options.pathPrefix ? (name ? `${options.pathPrefix}/${name}` : options.pathPrefix) : name;
    const base = {
      path,
      size: 0,
      mtime: Math.floor((header.mtime?.getTime() ?? 0) / 1000),
      mode: (header.mode ?? 0o600) & 0o7777,
      compression: 'none',
      encryption: 'none',
    };
    if (header.type === 'file' || header.type === 'contiguous-file') {
      let source: AsyncIterable<Buffer> | Buffer[] = entry as unknown as AsyncIterable<Buffer>;
      if (capture.has(path)) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        captured.set(path, Buffer.concat(chunks));
        source = [captured.get(path)!];
      }
      if (skip.has(path)) {
        if (!capture.has(path)) entry.resume();
        continue;
      }
      const stored = await writer.writeFile(source, header.size ?? 0);
      onEntry({ ...base, type: 'file', ...stored });
    } else if (header.type === 'directory') {
      entry.resume();
      if (path) onEntry({ ...base, type: 'directory' });
    } else if (header.type === 'symlink') {
      entry.resume();
      onEntry({ ...base, type: 'symlink', linkTarget: header.linkname ?? '' });
    } else {
      entry.resume(); // PostgreSQL sends only files, directories and symlinks
    }
  }
  return captured;
}

function normalizeTarPath(name: string): string {
  return name.replace(/^\.\//, '').replace(/\/+$/, '');
}
