import { readFileSync } from 'node:fs';
import { HarborError } from '../errors.js';
import type { StorageDriver } from '../storage/storage-driver.js';
import { getJson, putJson } from '../storage/storage-io.js';
import { pgMajor, type ServerIdentity } from './server-identity.js';
import { compareBackupIds, type BackupManifest } from './manifest.js';
import { RepositoryCodec } from '../codec/repository-codec.js';

/**
 * One server's part of one repository. The layout (relative to the
 * driver's root):
 *
 *   <server>/identity.json                      system identifier, PG version
 *   <server>/backups/<id>/manifest.json         written at start (STARTED), replaced at the end (DONE/FAILED)
 *   <server>/backups/<id>/bundle-000001.dat     file contents, concatenated; offsets in the manifest
 *   <server>/backups/<id>/backup_manifest       PostgreSQL's own manifest, when the method gives one
 *   <server>/trees/<id>/…                       plain files of methods that write a file tree (rsync)
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

  pgBackupManifestKey(id: string): string {
    return `${this.backupPrefix(id)}backup_manifest`;
  }

  identityKey(): string {
    return `${this.server}/identity.json`;
  }

  async readIdentity(): Promise<ServerIdentity | undefined> {
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
   * Check that the cluster matches what this repository already holds for
   * the server, and record it on first contact.
   */
  async checkIdentity(systemIdentifier: string, pgVersion: number): Promise<ServerIdentity> {
    const known = await this.readIdentity();
    if (!known) {
      const identity: ServerIdentity = { systemIdentifier, pgVersion, createdAt: new Date().toISOString() };
      try {
        await putJson(this.storage, this.identityKey(), identity, true);
        return identity;
      } catch (error) {
        if ((error as Error).name !== 'StorageConflictError') throw error;
        return this.checkIdentity(systemIdentifier, pgVersion); // another process created it first: compare with theirs
      }
    }
    if (known.systemIdentifier !== systemIdentifier) {
      throw new HarborError(
        `server ${this.server}: system identifier ${systemIdentifier} does not match ${known.systemIdentifier} stored in ${this.location}`,
        { hint: 'the conninfo points at a different cluster than the one this repository backs up; fix conninfo, or give the new cluster its own server name' },
      );
    }
    if (pgMajor(known.pgVersion) !== pgMajor(pgVersion)) {
      throw new HarborError(
        `server ${this.server}: PostgreSQL ${pgMajor(pgVersion)} does not match version ${pgMajor(known.pgVersion)} stored in ${this.location}`,
        { hint: 'after a major upgrade, back up under a new server name' },
      );
    }
    return known;
  }

  async writeManifest(manifest: BackupManifest): Promise<void> {
    await putJson(this.storage, this.manifestKey(manifest.id), manifest);
  }

  async readManifest(id: string): Promise<BackupManifest | undefined> {
    if (!(await this.storage.stat(this.manifestKey(id)))) return undefined;
    return getJson<BackupManifest>(this.storage, this.manifestKey(id));
  }

  /** Every backup id with a manifest, oldest first. */
  async listBackupIds(): Promise<string[]> {
    const prefix = `${this.server}/backups/`;
    const ids: string[] = [];
    for await (const object of this.storage.list(prefix)) {
      const rest = object.key.slice(prefix.length);
      if (rest.endsWith('/manifest.json') && rest.indexOf('/') === rest.length - '/manifest.json'.length) {
        ids.push(rest.slice(0, -'/manifest.json'.length));
      }
    }
    return ids.sort(compareBackupIds);
  }

  async listManifests(): Promise<BackupManifest[]> {
    const ids = await this.listBackupIds();
    const manifests = await Promise.all(ids.map((id) => this.readManifest(id)));
    return manifests.filter((m): m is BackupManifest => m !== undefined);
  }

  /** Remove every object of a backup, manifest first so that it stops being listed as restorable at once. */
  async deleteBackup(id: string): Promise<void> {
    await this.storage.delete(this.manifestKey(id));
    for (const prefix of [this.backupPrefix(id), this.treePrefix(id)]) {
      if (this.storage.deletePrefix) {
        await this.storage.deletePrefix(prefix);
        continue;
      }
      const keys: string[] = [];
      for await (const object of this.storage.list(prefix)) keys.push(object.key);
      for (const key of keys) await this.storage.delete(key);
    }
  }
}
