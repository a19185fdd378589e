import { createHash } from 'node:crypto';
import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest, ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { DecryptionError } from './cipher.js';
import { DecodeBoundError, countDecoded } from './decode-bounds.js';
import { storedObjectKey } from '../repository/stored-object.js';

/** Where a file's stored bytes are: its own bundle, or the one of the backup it references. */
export function storedRange(repository: Repository, backup: BackupManifest, file: ManifestFile): { key: string; offset: number; length: number } | undefined {
  const key = storedObjectKey(repository, backup.id, file);
  if (key === undefined) return undefined;
  return { key, offset: file.offset ?? 0, length: file.storedSize ?? file.size };
}

export function isEncoded(file: ManifestFile): boolean {
  return (file.compression ?? 'none') !== 'none' || (file.encryption ?? 'none') !== 'none';
}

/**
 * The original bytes of one stored file, streamed, and exactly as many as
 * the manifest's `size` (decode-bounds.ts: more fails as soon as it comes,
 * fewer at the end). Any decoding failure (a damaged frame, a chunk that
 * fails authentication, a truncated file) is reported naming the file.
 */
export async function* decodeFile(repository: Repository, file: ManifestFile, stored: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const expected = { bytes: file.size, exact: true };
  if (!isEncoded(file)) {
    try {
      yield* countDecoded(stored, expected);
    } catch (error) {
      throw error instanceof DecodeBoundError ? damaged(file, error) : error;
    }
    return;
  }
  let decoded: AsyncIterable<Buffer>;
  try {
    decoded = await repository.codec.decoder(stored, file, expected);
  } catch (error) {
    throw error instanceof HarborError ? error : damaged(file, error);
  }
  try {
    yield* decoded;
  } catch (error) {
    throw error instanceof HarborError ? error : damaged(file, error);
  }
}

function damaged(file: ManifestFile, error: unknown): HarborError {
  if (error instanceof DecodeBoundError) {
    return new HarborError(`file ${file.path} (${file.size} bytes in the manifest): its stored ${(file.compression ?? 'none') !== 'none' ? `${file.compression} ` : ''}data ${error.message}`, {
      hint: 'the repository copy is damaged or was altered; restore another backup (pgharbor verify lists every file that fails)',
      cause: error,
    });
  }
  const how = error instanceof DecryptionError ? `decryption failed: ${error.message}` : `its stored ${file.compression} data cannot be decompressed: ${errorMessage(error)}`;
  return new HarborError(`file ${file.path} does not match its checksum: ${how}`, {
    hint: 'the repository copy is damaged (or was written with another key); restore an older backup',
    cause: error,
  });
}

/**
 * Before a restore writes anything: when the backup has encrypted files,
 * open the key (a wrong passphrase fails here) and decrypt the smallest
 * encrypted file completely, so that a key that opens the repository but
 * not this backup fails here too, with a clear message.
 */
export async function checkBackupReadable(repository: Repository, backup: BackupManifest): Promise<void> {
  const encrypted = backup.files.filter((f) => f.type === 'file' && (f.encryption ?? 'none') !== 'none' && (f.bundle !== undefined || f.object !== undefined));
  if (encrypted.length === 0) return;
  await repository.codec.key();
  const probe = encrypted.reduce((a, b) => ((b.storedSize ?? b.size) < (a.storedSize ?? a.size) ? b : a));
  const range = storedRange(repository, backup, probe)!;
  const hash = createHash('sha256');
  try {
    for await (const chunk of decodeFile(repository, probe, await repository.storage.get(range.key, { offset: range.offset, length: range.length }))) hash.update(chunk);
  } catch (error) {
    const reason = error instanceof HarborError && error.cause instanceof DecryptionError ? error.cause.message : errorMessage(error);
    throw new HarborError(`backup ${backup.id} cannot be decrypted with the configured key: ${probe.path}: ${reason}`, {
      hint: 'check the encryption passphrase or key of this repository; nothing was written',
      cause: error,
    });
  }
  if (probe.sha256 && hash.digest('hex') !== probe.sha256) {
    throw new HarborError(`backup ${backup.id}: file ${probe.path} does not match its checksum after decryption`, { hint: 'the repository copy is damaged; restore an older backup' });
  }
}
