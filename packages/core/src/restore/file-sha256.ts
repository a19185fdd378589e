import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { HarborError } from '../errors.js';
import type { ManifestFile } from '../repository/manifest.js';

/** Bytes per read: two reused buffers, one hashed while the other fills. */
const CHUNK = 1024 * 1024;

/**
 * The sha256 of a local file, read through two reused buffers (no buffer
 * allocated per read: a stream's fresh 1 MiB chunks cost page faults and
 * garbage collections over gigabytes). `onBytes` counts what was read.
 */
export async function sha256OfFile(file: string, onBytes?: (bytes: number) => void): Promise<string> {
  const hash = createHash('sha256');
  const handle = await fs.open(file, 'r');
  let next: Promise<{ bytesRead: number }> | undefined;
  try {
    const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    const readAt = (index: number, position: number) => {
      const read = handle.read(buffers[index % 2], 0, CHUNK, position);
      read.catch(() => {}); // in flight while this chunk is hashed; its failure surfaces where it is awaited
      return read;
    };
    let position = 0;
    next = readAt(0, 0);
    for (let index = 0; ; index++) {
      const { bytesRead } = await next;
      if (bytesRead === 0) break;
      const chunk = buffers[index % 2].subarray(0, bytesRead);
      position += bytesRead;
      next = readAt(index + 1, position); // the next read runs while this one is hashed
      hash.update(chunk);
      onBytes?.(bytesRead);
    }
    return hash.digest('hex');
  } finally {
    await next?.catch(() => {}); // never close the handle under a read
    await handle.close();
  }
}

/** A restored file's bytes against its manifest entry: a mismatch stops the restore, naming the file. */
export function checkDigest(file: ManifestFile, actual: string): void {
  if (file.sha256 && actual !== file.sha256) {
    throw new HarborError(`file ${file.path} does not match its checksum (expected sha256 ${file.sha256}, got ${actual})`, {
      hint: 'the repository copy is damaged; restore an older backup',
    });
  }
}
