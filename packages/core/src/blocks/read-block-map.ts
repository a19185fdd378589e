import { HarborError, errorMessage } from '../errors.js';
import type { ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { blockMapPlace } from './block-place.js';
import { BlockMapError, blockMapDigest, decodeBlockMap, maxBlockMapSize, type BlockMap } from './block-map.js';

/**
 * Read and check the block map of `file`, an entry of backup `backupId`
 * (its map is in the bundle of the backup that owns the entry's bytes).
 * The map must have the size and sha256 the manifest gives, decode to a
 * map of exactly the file's size and point only into `chain`.
 */
export async function readBlockMap(repository: Repository, backupId: string, file: ManifestFile, chain: ReadonlySet<string>): Promise<BlockMap> {
  const info = file.blockMap!;
  const owner = file.reference ?? backupId;
  const fail = (reason: string, cause?: unknown) =>
    new HarborError(`backup ${backupId}: the block map of ${file.path} (stored in backup ${owner}) ${reason}`, {
      hint: 'the repository copy is damaged or was altered (a map truncated, swapped or pointing outside the chain): restore another backup, run pgharbor verify; nothing was written',
      cause,
    });
  if (info.size > maxBlockMapSize(file.size)) throw fail(`claims ${info.size} bytes, more than a file of ${file.size} bytes needs`);
  const key = repository.bundleKey(owner, file.bundle!);
  const parts: Buffer[] = [];
  try {
    const stored = await repository.storage.get(key, { offset: info.offset, length: info.storedSize });
    const decoded = await repository.codec.decoder(stored, file, blockMapPlace(repository.server, owner, file.path), { bytes: info.size, exact: true });
    for await (const chunk of decoded) parts.push(Buffer.from(chunk));
  } catch (error) {
    if (error instanceof HarborError && /not found|missing/i.test(error.message)) throw error;
    throw fail(`cannot be read: ${errorMessage(error)}`, error);
  }
  const bytes = Buffer.concat(parts);
  if (blockMapDigest(bytes) !== info.sha256) throw fail('does not match its sha256 in the manifest');
  try {
    return decodeBlockMap(bytes, file.size, chain);
  } catch (error) {
    if (error instanceof BlockMapError) throw fail(error.message, error);
    throw error;
  }
}
