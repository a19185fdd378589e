import type { ManifestFile } from './manifest.js';
import type { Repository } from './repository.js';

/**
 * The storage key holding a file's stored bytes: its bundle, or the object
 * it is stored alone in; in the backup that owns the bytes (`reference`)
 * or in `backupId` itself. Undefined for files that store no bytes (empty).
 */
export function storedObjectKey(repository: Repository, backupId: string, file: ManifestFile): string | undefined {
  const owner = file.reference ?? backupId;
  if (file.object !== undefined) return repository.objectKey(owner, file.object);
  if (file.bundle !== undefined) return repository.bundleKey(owner, file.bundle);
  return undefined;
}
