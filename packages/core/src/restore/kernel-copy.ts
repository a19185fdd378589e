import { constants as fsConstants, promises as fs } from 'node:fs';
import type { ManifestFile } from '../repository/manifest.js';
import { checkDigest, digestAlgorithmOf, digestOfLocalFile } from '../codec/file-digest.js';

/**
 * A file stored as it is and alone in its object of a local repository (a
 * big file gets a bundle of its own, an rsync tree one object per file) is
 * copied by the kernel, as `cp` does (copy_file_range through libuv's
 * copyfile), while the main thread reads the same object and hashes it:
 * the bytes never pass through JavaScript on their way to the target. A
 * scale-100 pgbench database keeps 1.5 of its 1.53 GB in three such files.
 * The checksum is of the stored object, the copy's source: a mismatch
 * stops the restore naming the file, as for any other file.
 *
 * Returns false (nothing done) when the object is not exactly the file.
 */
export async function copyStoredFile(source: string, target: string, file: ManifestFile): Promise<boolean> {
  const stat = await fs.stat(source).catch(() => undefined);
  if (!stat?.isFile() || stat.size !== file.size) return false;
  // COPYFILE_EXCL: never write over something that was already there. The copy is flushed to disk at
  // once, while the hash goes on: the restore's closing syncfs then finds these pages clean.
  const copied = fs.copyFile(source, target, fsConstants.COPYFILE_EXCL).then(() => flush(target));
  copied.catch(() => {}); // awaited below, after the hash; never unhandled meanwhile
  let actual: string;
  try {
    actual = await digestOfLocalFile(source, digestAlgorithmOf(file));
  } finally {
    await copied.catch(() => {}); // the copy must have stopped before we report anything
  }
  await copied;
  checkDigest(file, actual);
  await fs.chmod(target, file.mode & 0o777 || 0o600); // copyfile gave it the repository's 0600
  if (file.mtime) await fs.utimes(target, file.mtime, file.mtime);
  return true;
}

async function flush(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
