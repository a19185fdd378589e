import { readFileSync } from 'node:fs';
import { HarborError } from '../errors.js';
import type { StorageDriver } from '../storage/storage-driver.js';
import { getJson, putJson, readAll } from '../storage/storage-io.js';
import { identityMacMatches, pgMajor, signIdentity, type ReadIdentity, type ServerIdentity } from './server-identity.js';
import { compareBackupIds, type BackupManifest } from './manifest.js';
import { RepositoryCodec } from '../codec/repository-codec.js';
import { pauseForTest } from '../testing-pause.js';
import type { DeletionMarker } from './deletion-marker.js';
import { isBackupId } from './backup-id.js';
import { InvalidManifestError, readValidManifest } from './manifest-validate.js';
import { decodeManifest, encodeManifest } from './manifest-codec.js';

/**
 * One server's part of one repository. The layout (relative to the
 * driver's root):
 *
 *   <server>/identity.json                      system identifier, PG version
 *   <server>/backups/<id>/manifest.json         written at start (STARTED), replaced at the end (DONE/FAILED)
 *   <server>/backups/<id>/bundle-000001.dat     file contents, concatenated; offsets in the manifest
 *   <server>/backups/<id>/backup_manifest       PostgreSQL's own manifest, when the method gives one
 *   <server>/trees/<id>/…                       plain files of methods that write a file tree (rsync)
 *   <server>/deleting/<id>                      present while backup <id> is being deleted (DeletionMarker)
 *   <server>/wal/<timeline+log>/<segment>       archived WAL (see the archive commands)
 */
export class Repository {
  /** How bytes are stored here: compression and encryption (docs/encryption.md). */
  readonly codec: RepositoryCodec;

  constructor(
    readonly storage: StorageDriver,
    readonly server: string,
    /** 1-based position in the server's repositories list. */
    readonly index: number,
    readonly name: string,
    codec?: RepositoryCodec,
  ) {
    this.codec = codec ?? RepositoryCodec.identity(storage, server);
  }

  get location(): string {
    return this.storage.location;
  }

  backupPrefix(id: string): string {
    return `${this.server}/backups/${id}/`;
  }

  manifestKey(id: string): string {
    return `${this.backupPrefix(id)}manifest.json`;
  }

  bundleKey(id: string, bundle: number): string {
    return `${this.backupPrefix(id)}bundle-${String(bundle).padStart(6, '0')}.dat`;
  }

  /**
   * Where a backup's plain file tree lives (methods that write files
   * themselves, e.g. rsync with hard links). Beside backups/, not inside:
   * listing backups must not walk every file of every tree.
   */
  treePrefix(id: string): string {
    return `${this.server}/trees/${id}/`;
  }

  /** Key of a file stored alone (ManifestFile.object) in backup `id`'s tree. */
  objectKey(id: string, object: string): string {
    return `${this.treePrefix(id)}${object}`;
  }

  /**
   * Present while backup `id` is being deleted: written first, removed last
   * (docs/repository-format.md). Outside the backup's own prefix, so that
   * removing that prefix whole (deletePrefix) never removes it early.
   */
  deletionMarkerKey(id: string): string {
    return `${this.server}/deleting/${id}`;
  }

  pgBackupManifestKey(id: string): string {
    return `${this.backupPrefix(id)}backup_manifest`;
  }

  identityKey(): string {
    return `${this.server}/identity.json`;
  }

  async readIdentity(): Promise<ReadIdentity | undefined> {
    const identity = await this.readIdentityFile();
    return identity && this.authenticateIdentity(identity);
  }

  private async readIdentityFile(): Promise<ServerIdentity | undefined> {
    const local = this.storage.localPath?.(this.identityKey());
    if (local) {
      // A plain local file (posix): one read of a few bytes, no stream. archive-push waits for it
      // on every segment, and a chain of thread-pool round trips costs more than the read.
      try {
        return JSON.parse(readFileSync(local, 'utf8')) as ServerIdentity;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
        throw new HarborError(`cannot read the server identity ${local}: ${(error as Error).message}`, { hint: 'check the repository directory and its permissions' });
      }
    }
    if (!(await this.storage.stat(this.identityKey()))) return undefined;
    return getJson<ServerIdentity>(this.storage, this.identityKey());
  }

  /**
   * In an encrypted repository identity.json carries a MAC made with the
   * data key: a wrong one is refused. One without a MAC (an earlier
   * pgharbor's) is returned as not authenticated: checkIdentity signs it
   * once the cluster in hand matches it, and refuses it otherwise.
   */
  private async authenticateIdentity(identity: ServerIdentity): Promise<ReadIdentity> {
    if (!this.codec.isEncrypted) return identity;
    if (identity.mac === undefined) return { ...identity, authenticated: false };
    const { key } = await this.codec.key();
    if (!identityMacMatches(key, this.server, identity)) {
      throw new HarborError(`the server identity ${this.identityKey()} in ${this.location} failed authentication: it was changed without the repository's key`, {
        hint: `someone with write access to the repository modified it; put back the original (system identifier and version of server ${this.server}) or remove it, then run pgharbor check ${this.server}`,
      });
    }
    return { ...identity, authenticated: true };
  }

  private async writeIdentity(identity: ServerIdentity, ifNotExists: boolean): Promise<ServerIdentity> {
    const key = this.codec.isEncrypted ? await this.codec.prepareWrite() : undefined;
    const stored = key ? signIdentity(key.key, this.server, identity) : identity;
    await putJson(this.storage, this.identityKey(), stored, ifNotExists);
    return stored;
  }

  /**
   * Check that the cluster matches what this repository already holds for
   * the server, and record it on first contact.
   */
  async checkIdentity(systemIdentifier: string, pgVersion: number): Promise<ServerIdentity> {
    const known = await this.readIdentity();
    if (!known) {
      const identity: ServerIdentity = { systemIdentifier, pgVersion, createdAt: new Date().toISOString() };
      try {
        return await this.writeIdentity(identity, true);
      } catch (error) {
        if ((error as Error).name !== 'StorageConflictError') throw error;
        return this.checkIdentity(systemIdentifier, pgVersion); // another process created it first: compare with theirs
      }
    }
    const unsigned = known.authenticated === false ? ' (in an identity.json without a MAC: written by an earlier pgharbor, or by someone else)' : '';
    if (known.systemIdentifier !== systemIdentifier) {
      throw new HarborError(
        `server ${this.server}: system identifier ${systemIdentifier} does not match ${known.systemIdentifier} stored in ${this.location}${unsigned}`,
        { hint: 'the conninfo points at a different cluster than the one this repository backs up; fix conninfo, or give the new cluster its own server name' },
      );
    }
    if (pgMajor(known.pgVersion) !== pgMajor(pgVersion)) {
      throw new HarborError(
        `server ${this.server}: PostgreSQL ${pgMajor(pgVersion)} does not match version ${pgMajor(known.pgVersion)} stored in ${this.location}${unsigned}`,
        { hint: 'after a major upgrade, back up under a new server name' },
      );
    }
    // An earlier pgharbor's identity.json, and it names this very cluster: sign it (once).
    if (known.authenticated === false) return this.writeIdentity(known, false);
    return known;
  }

  /** Sealed in an encrypted repository, checksummed in a plain one (manifest-codec.ts). */
  async writeManifest(manifest: BackupManifest): Promise<void> {
    const { deleting: _transient, ...stored } = manifest; // read from the marker, never stored
    await this.storage.put(this.manifestKey(manifest.id), await encodeManifest(this, stored as BackupManifest));
  }

  async readManifest(id: string): Promise<BackupManifest | undefined> {
    const manifest = await this.readStoredManifest(id);
    if (manifest) manifest.deleting = await this.readDeletionMarker(id);
    return manifest;
  }

  /** The stored bytes of a manifest, as they are (undefined: none). */
  async readManifestBytes(id: string): Promise<Buffer | undefined> {
    if (!(await this.storage.stat(this.manifestKey(id)))) return undefined;
    return readAll(await this.storage.get(this.manifestKey(id)));
  }

  /**
   * A backup's manifest, authenticated (encrypted repository: manifest-codec.ts)
   * or checked against its checksum (plain), then validated (manifest-validate.ts).
   */
  private async readStoredManifest(id: string): Promise<BackupManifest | undefined> {
    const bytes = await this.readManifestBytes(id);
    if (!bytes) return undefined;
    return readValidManifest(() => decodeManifest(this, id, bytes), await this.manifestPlace(id));
  }

  async readDeletionMarker(id: string): Promise<DeletionMarker | undefined> {
    if (!(await this.storage.stat(this.deletionMarkerKey(id)))) return undefined;
    // A marker that cannot be read still marks the backup as being deleted: an empty one will do.
    return getJson<DeletionMarker>(this.storage, this.deletionMarkerKey(id)).catch(() => ({}) as DeletionMarker);
  }

  /** What a manifest found under `id` must say about itself (manifest-validate.ts). */
  private async manifestPlace(id: string) {
    this.identity ??= this.readIdentity().catch(() => undefined); // written once, never changed: read once
    return { id, server: this.server, where: `${this.name} (${this.location})`, systemIdentifier: (await this.identity)?.systemIdentifier };
  }

  private identity?: Promise<ServerIdentity | undefined>;

  /**
   * Manifests that failed validation in the last listManifests(), by id:
   * skipped there (never "latest", never expired), shown as INVALID by list-backups.
   */
  readonly invalidManifests = new Map<string, InvalidManifestError>();
  /** Where listManifests() says it skipped an invalid manifest (the server handle points it at the log). */
  onInvalidManifest: (error: InvalidManifestError) => void = () => {};

  /** One listing of `<server>/backups/` (ids with a manifest) and one of `<server>/deleting/` (deletion markers). */
  private async scanBackups(): Promise<{ withManifest: string[]; deleting: Set<string> }> {
    const prefix = `${this.server}/backups/`;
    const withManifest: string[] = [];
    for await (const object of this.storage.list(prefix)) {
      const rest = object.key.slice(prefix.length);
      if (rest.endsWith('/manifest.json') && rest.indexOf('/') === rest.length - '/manifest.json'.length) {
        withManifest.push(rest.slice(0, -'/manifest.json'.length));
      }
    }
    const markers = `${this.server}/deleting/`;
    const deleting = new Set<string>();
    for await (const object of this.storage.list(markers)) {
      const id = object.key.slice(markers.length);
      if (isBackupId(id)) deleting.add(id); // anything else is not a marker of ours
    }
    return { withManifest: withManifest.sort(compareBackupIds), deleting };
  }

  /** Every backup id with a manifest or a deletion marker, oldest first. */
  async listBackupIds(): Promise<string[]> {
    const { withManifest, deleting } = await this.scanBackups();
    return [...new Set([...withManifest, ...deleting])].sort(compareBackupIds);
  }

  /** Every backup's manifest, oldest first; one being deleted carries `deleting` (displayStatus DELETING). */
  async listManifests(): Promise<BackupManifest[]> {
    const { withManifest, deleting } = await this.scanBackups();
    this.invalidManifests.clear();
    const manifests = await Promise.all(
      withManifest.map(async (id) => {
        const manifest = await this.readStoredManifest(id).catch((error: unknown) => {
          if (!(error instanceof InvalidManifestError)) throw error;
          this.invalidManifests.set(id, error);
          this.onInvalidManifest(error);
          return undefined;
        });
        if (manifest && deleting.has(id)) manifest.deleting = (await this.readDeletionMarker(id)) ?? ({} as DeletionMarker);
        return manifest;
      }),
    );
    return manifests.filter((m): m is BackupManifest => m !== undefined);
  }

  /** Ids of backups whose deletion began and did not finish (a deletion marker is there). */
  async pendingDeletions(): Promise<string[]> {
    return [...(await this.scanBackups()).deleting].sort(compareBackupIds);
  }

  /**
   * Remove every object of a backup so that a deletion killed at any point
   * is finished by the next one: the deletion marker first (from then on the
   * backup is DELETING, never restorable), then the data, then the manifest,
   * the marker last. Safe to call again on a backup whose deletion was
   * interrupted, or that is already gone.
   */
  async deleteBackup(id: string, marker: DeletionMarker): Promise<void> {
    try {
      await putJson(this.storage, this.deletionMarkerKey(id), marker, true);
    } catch (error) {
      if ((error as Error).name !== 'StorageConflictError') throw error; // marked by an earlier, interrupted deletion
    }
    await pauseForTest('delete:marked');
    await this.removePrefix(this.treePrefix(id));
    let removed = 0;
    for (const key of await this.keysUnder(this.backupPrefix(id))) {
      if (key === this.manifestKey(id)) continue;
      await this.storage.delete(key);
      if (++removed === 1) await pauseForTest('delete:some-data');
    }
    await this.storage.delete(this.manifestKey(id));
    await pauseForTest('delete:manifest-removed');
    // What list does not show: temp files of a killed writer, unfinished multipart uploads.
    await this.removePrefix(this.backupPrefix(id));
    await this.storage.delete(this.deletionMarkerKey(id));
  }

  /** Remove everything under a "directory" prefix: deletePrefix when the driver has it (it also removes hidden leftovers). */
  async removePrefix(prefix: string): Promise<void> {
    if (this.storage.deletePrefix) {
      await this.storage.deletePrefix(prefix);
      return;
    }
    for (const key of await this.keysUnder(prefix)) await this.storage.delete(key);
  }

  private async keysUnder(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const object of this.storage.list(prefix)) keys.push(object.key);
    return keys;
  }
}
