import type { ServerHandle } from '../server-handle.js';
import { ConfigError, errorMessage } from '../errors.js';
import { acquireLock } from './repository-lock.js';
import { encodePgBackupManifest, readUnsealedManifest } from './manifest-codec.js';
import { MAGIC } from '../codec/cipher.js';
import { readAll } from '../storage/storage-io.js';
import { assertEncryptedFiles } from '../codec/backup-codec.js';

export interface SealedManifest {
  id: string;
  status: string;
  files: number;
  /** sealed (or, with dryRun, would be); refused: left as it is, with the reason. */
  outcome: 'sealed' | 'refused';
  reason?: string;
}

/**
 * `pgharbor seal-manifests SERVER`: the explicit step that accepts the
 * manifests an earlier pgharbor left in the clear in an encrypted
 * repository, by sealing them with the data key. Until then every command
 * refuses them, since nothing tells them apart from a planted one: the
 * operator who runs this vouches for them. A manifest is still refused when
 * it names another backup or server, or has files stored unencrypted (an
 * encrypted repository serves no plaintext, whoever wrote it).
 */
export async function sealManifests(server: ServerHandle, options: { repo?: number; dryRun?: boolean } = {}): Promise<{ repository: string; manifests: SealedManifest[] }> {
  const repository = await server.repository(options.repo);
  if (!repository.codec.isEncrypted) {
    throw new ConfigError(`${repository.name} of ${server.name} (${repository.location}) is not encrypted: its manifests carry a checksum and need no sealing`, 'seal-manifests is for repositories with encryption settings');
  }
  await repository.codec.key(); // a wrong passphrase fails before anything is read
  const lock = options.dryRun ? undefined : await acquireLock(repository, 'backup', 'seal-manifests');
  try {
    const manifests: SealedManifest[] = [];
    for (const id of await repository.listBackupIds()) {
      const bytes = await repository.readManifestBytes(id);
      if (!bytes) continue;
      let manifest;
      try {
        manifest = readUnsealedManifest(repository, id, bytes);
      } catch (error) {
        manifests.push({ id, status: '?', files: 0, outcome: 'refused', reason: errorMessage(error) });
        continue;
      }
      if (!manifest) continue; // sealed already
      const entry: SealedManifest = { id, status: String(manifest.status), files: manifest.files?.length ?? 0, outcome: 'sealed' };
      try {
        if (manifest.id !== id || manifest.server !== server.name) throw new Error(`it names backup ${manifest.id} of server ${manifest.server}`);
        assertEncryptedFiles(repository, manifest);
        if (!options.dryRun) {
          // PostgreSQL's backup_manifest beside it was in the clear too: sealed first, the manifest last.
          const pg = repository.pgBackupManifestKey(id);
          const pgBytes = (await repository.storage.stat(pg)) ? await readAll(await repository.storage.get(pg)) : undefined;
          if (pgBytes && !pgBytes.subarray(0, MAGIC.length).equals(MAGIC)) await repository.storage.put(pg, await encodePgBackupManifest(repository, id, pgBytes));
          await repository.writeManifest(manifest);
        }
      } catch (error) {
        Object.assign(entry, { outcome: 'refused', reason: errorMessage(error) });
      }
      manifests.push(entry);
    }
    return { repository: repository.name, manifests };
  } finally {
    await lock?.release();
  }
}
