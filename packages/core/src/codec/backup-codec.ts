import { HarborError, errorMessage } from '../errors.js';
import type { BackupManifest, ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { DecryptionError, objectPlace } from './cipher.js';
import { digestAlgorithmOf, fileHasher, matchesRecorded, recordedDigest } from './file-digest.js';
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
 * Where a file's encrypted bytes belong: the server, the backup that
 * stored them (a reused file's bytes stay those of its first backup) and
 * the file's path. Files of backups taken before objects were bound
 * (format 1) still open; their integrity rests on the sealed manifest's sha256.
 */
export function filePlace(server: string, backupId: string, file: Pick<ManifestFile, 'path' | 'reference'>): { place: Buffer; legacy: boolean } {
  return { place: objectPlace('file', server, file.reference ?? backupId, file.path), legacy: true };
}

/** A file entry with stored bytes that are not encrypted (empty files store none). */
function storedInTheClear(file: ManifestFile): boolean {
  return file.type === 'file' && (file.encryption ?? 'none') === 'none' && (file.bundle !== undefined || file.object !== undefined || file.size > 0);
}

function plaintextRefused(backupId: string, file: ManifestFile): HarborError {
  return new HarborError(`backup ${backupId}: file ${file.path} is stored unencrypted in an encrypted repository: refused`, {
    hint: 'pgharbor never stores plaintext in an encrypted repository: someone with write access changed it; restore another backup and check the repository',
  });
}

/**
 * In an encrypted repository, every file with stored bytes must be
 * encrypted: a manifest entry saying `encryption: none` is refused before
 * anything is written (restore) or read (verify).
 */
export function assertEncryptedFiles(repository: Repository, backup: BackupManifest): void {
  if (!repository.codec.isEncrypted) return;
  const clear = backup.files.find(storedInTheClear);
  if (clear) throw plaintextRefused(backup.id, clear);
}

/**
 * The original bytes of one stored file of backup `backupId`, streamed,
 * and exactly as many as the manifest's `size` (decode-bounds.ts: more
 * fails as soon as it comes, fewer at the end). Any decoding failure (a
 * damaged frame, a chunk that fails authentication, a truncated file, an
 * object from another place) is reported naming the file.
 */
export async function* decodeFile(repository: Repository, backupId: string, file: ManifestFile, stored: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  if (repository.codec.isEncrypted && storedInTheClear(file)) throw plaintextRefused(backupId, file);
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
    decoded = await repository.codec.decoder(stored, file, filePlace(repository.server, backupId, file), expected);
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
  assertEncryptedFiles(repository, backup);
  // Block-mapped files are stored as super blocks and a map, read (and their key tried) by the restore's map check.
  const encrypted = backup.files.filter((f) => f.type === 'file' && !f.blockMap && (f.encryption ?? 'none') !== 'none' && (f.bundle !== undefined || f.object !== undefined));
  if (encrypted.length === 0) return;
  await repository.codec.key();
  const probe = encrypted.reduce((a, b) => ((b.storedSize ?? b.size) < (a.storedSize ?? a.size) ? b : a));
  const range = storedRange(repository, backup, probe)!;
  const hash = fileHasher(digestAlgorithmOf(probe));
  try {
    for await (const chunk of decodeFile(repository, backup.id, probe, await repository.storage.get(range.key, { offset: range.offset, length: range.length }))) hash.update(chunk);
  } catch (error) {
    const decryption = error instanceof HarborError && error.cause instanceof DecryptionError ? error.cause : undefined;
    const reason = decryption ? decryption.message : errorMessage(error);
    if (decryption && !/another key/.test(reason)) {
      // The key opened the repository: an object that does not open was changed or moved, not read with a wrong key.
      throw new HarborError(`backup ${backup.id}: file ${probe.path}: ${reason}`, {
        hint: 'its stored bytes were modified, or moved there from another file or backup: this backup cannot be trusted, restore another one; nothing was written',
        cause: error,
      });
    }
    throw new HarborError(`backup ${backup.id} cannot be decrypted with the configured key: ${probe.path}: ${reason}`, {
      hint: 'check the encryption passphrase or key of this repository; nothing was written',
      cause: error,
    });
  }
  if (recordedDigest(probe) && !matchesRecorded(probe, hash.digest())) {
    throw new HarborError(`backup ${backup.id}: file ${probe.path} does not match its checksum after decryption`, { hint: 'the repository copy is damaged; restore an older backup' });
  }
}
