import { createHash } from 'node:crypto';
import { HarborError, errorMessage } from '../errors.js';
import { MAGIC, objectPlace, sealBuffer, unsealBuffer } from '../codec/cipher.js';
import type { BackupManifest } from './manifest.js';
import type { Repository } from './repository.js';
import { InvalidManifestError } from './manifest-validate.js';

/**
 * The bytes of `backups/<id>/manifest.json`.
 *
 * In an encrypted repository the manifest is sealed with the server's data
 * key (one chunked AES-256-GCM object, format 2, docs/encryption.md) and
 * bound to its place ("manifest", server, backup id): a manifest edited,
 * written without the key, or copied from another backup fails to open.
 * A manifest says how each file is stored and its sha256, so this is what
 * makes the files it describes authentic too. It also hides file names.
 *
 * In a plain repository it is JSON whose first member is the sha256 of the
 * rest (the manifest serialised without that member, exactly as stored
 * after it): accidental damage is detected; tampering is not (anyone can
 * recompute a sha256).
 */
const CHECKSUM_LINE = /^\{\n "checksum": "sha256:([0-9a-f]{64})",/;
/** How every manifest written before checksums began (JSON.stringify(manifest, null, 1) of run-backup's object). */
const UNCHECKED_START = '{\n "formatVersion"';

/**
 * A manifest that is not authenticated in an encrypted repository: refused
 * like any invalid manifest (listed INVALID, skipped by listings and
 * "latest", removable with delete).
 */
export class UnauthenticatedManifestError extends InvalidManifestError {
  constructor(backupId: string, where: string, message: string, hint: string) {
    super(backupId, where, undefined, message, { message, hint });
    this.name = 'UnauthenticatedManifestError';
  }
}

function manifestPlace(repository: Repository, id: string): Buffer {
  return objectPlace('manifest', repository.server, id);
}

export async function encodeManifest(repository: Repository, manifest: BackupManifest): Promise<Buffer> {
  if (repository.codec.isEncrypted) {
    const key = await repository.codec.prepareWrite();
    return sealBuffer({ key: key!.key, place: manifestPlace(repository, manifest.id) }, Buffer.from(JSON.stringify(manifest), 'utf8'));
  }
  await repository.codec.prepareWrite(); // refuses plaintext in an encrypted repository
  return Buffer.from(checksummedJson(manifest), 'utf8');
}

/** JSON of the manifest with the sha256 of its own serialisation as first member. */
export function checksummedJson(manifest: BackupManifest): string {
  const body = JSON.stringify(manifest, null, 1);
  const sha256 = createHash('sha256').update(body).digest('hex');
  return `{\n "checksum": "sha256:${sha256}",${body.slice(1)}\n`;
}

/** The manifest of backup `id` from its stored bytes, authenticated (encrypted repository) or checked (plain). */
export async function decodeManifest(repository: Repository, id: string, bytes: Buffer): Promise<BackupManifest> {
  const where = `backup ${id} of ${repository.server} in ${repository.name} (${repository.location})`;
  const sealed = bytes.subarray(0, MAGIC.length).equals(MAGIC);
  if (repository.codec.isEncrypted) {
    if (!sealed) throw unsealedManifest(repository, id, where);
    const seal = await repository.codec.seal(manifestPlace(repository, id));
    let plain: Buffer;
    try {
      plain = unsealBuffer(seal, bytes);
    } catch (error) {
      throw new UnauthenticatedManifestError(id, where, `${where}: the manifest failed authentication (${errorMessage(error)})`, `it was modified, or copied from another backup: restore another backup, and remove ${repository.manifestKey(id)} once you have looked at it`);
    }
    return parseManifest(plain.toString('utf8'), id, where);
  }
  await repository.codec.assertPlainRepository();
  if (sealed) {
    throw new HarborError(`${where}: the manifest is encrypted, but the config has no encryption settings for ${repository.name}`, {
      hint: 'add the encryption passphrase or key this repository was written with',
      exitCode: 2,
    });
  }
  const text = bytes.toString('utf8');
  const checksum = CHECKSUM_LINE.exec(text);
  if (!checksum) {
    if (text.startsWith(UNCHECKED_START)) return parseManifest(text, id, where); // written before manifests carried a checksum
    throw damagedManifest(id, where, 'it does not start with its checksum');
  }
  const body = `{${text.slice(checksum[0].length).replace(/\n$/, '')}`;
  if (createHash('sha256').update(body).digest('hex') !== checksum[1]) throw damagedManifest(id, where, 'its sha256 does not match its content');
  return parseManifest(body, id, where);
}

function parseManifest(text: string, id: string, where: string): BackupManifest {
  try {
    return JSON.parse(text) as BackupManifest;
  } catch (error) {
    throw damagedManifest(id, where, `it is not valid JSON (${errorMessage(error)})`);
  }
}

/** Damage is refused like any invalid manifest: listed INVALID, skipped, removable with delete. */
function damagedManifest(id: string, where: string, what: string): InvalidManifestError {
  return new InvalidManifestError(id, where, undefined, what, {
    message: `${where}: the manifest is damaged: ${what}`,
    hint: 'the repository copy was changed after it was written; this backup cannot be trusted: restore another one (an unencrypted repository detects damage, not deliberate changes)',
  });
}

function unsealedManifest(repository: Repository, id: string, where: string): UnauthenticatedManifestError {
  return new UnauthenticatedManifestError(
    id,
    where,
    `${where}: the manifest is plain JSON in an encrypted repository: not authenticated, refused`,
    `if an earlier pgharbor wrote it (a backup taken before manifests were sealed), check that backup and seal its manifest with: pgharbor seal-manifests ${repository.server} --repo ${repository.index}; if not, someone with write access planted it: remove ${repository.manifestKey(id)}`,
  );
}

/**
 * A manifest in the clear in an encrypted repository, for
 * `seal-manifests`: parsed, not trusted. Undefined when it is sealed already.
 */
export function readUnsealedManifest(repository: Repository, id: string, bytes: Buffer): BackupManifest | undefined {
  if (bytes.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const where = `backup ${id} of ${repository.server} in ${repository.name} (${repository.location})`;
  const text = bytes.toString('utf8');
  const checksum = CHECKSUM_LINE.exec(text);
  return parseManifest(checksum ? `{${text.slice(checksum[0].length)}` : text, id, where);
}

/**
 * PostgreSQL's backup_manifest (file names, sizes, CRC-32C) as stored:
 * sealed like our manifest in an encrypted repository (it would name every
 * file in the clear otherwise), as it is in a plain one.
 */
export async function encodePgBackupManifest(repository: Repository, id: string, content: Buffer): Promise<Buffer> {
  if (!repository.codec.isEncrypted) return content;
  const key = await repository.codec.prepareWrite();
  return sealBuffer({ key: key!.key, place: objectPlace('manifest', repository.server, id, 'backup_manifest') }, content);
}

export async function decodePgBackupManifest(repository: Repository, id: string, stored: Buffer): Promise<Buffer> {
  if (!repository.codec.isEncrypted) return stored;
  const where = `PostgreSQL's backup_manifest of backup ${id} in ${repository.name} (${repository.location})`;
  if (!stored.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new UnauthenticatedManifestError(id, where, `${where} is in the clear in an encrypted repository: not authenticated, refused`, `if an earlier pgharbor wrote it, seal it with: pgharbor seal-manifests ${repository.server} --repo ${repository.index}`);
  }
  try {
    return unsealBuffer(await repository.codec.seal(objectPlace('manifest', repository.server, id, 'backup_manifest')), stored);
  } catch (error) {
    throw new UnauthenticatedManifestError(id, where, `${where} failed authentication (${errorMessage(error)})`, 'it was modified or copied from another backup');
  }
}
