import { digestAlgorithmOf, fileHasher, matchesRecorded, recordedDigest } from '../codec/file-digest.js';
import type { BundleWriter } from '../repository/bundle-writer.js';
import type { BackupManifest, ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { isRelationFile } from '../blocks/relation-file.js';
import { readBlockMap } from '../blocks/read-block-map.js';
import { storeRelationFile, type ParentFile, type StoredFields } from '../blocks/store-relation-file.js';
import { storeIncrementalFile } from '../blocks/store-incremental-file.js';
import { IncrementalFileError } from '../blocks/incremental-file.js';

/** Non-relation files up to this size are read whole before storing, to tell whether the parent's copy can be reused. */
const REUSE_WHOLE_UP_TO = 4 * 1024 * 1024;

export interface StoredEntry {
  stored: StoredFields;
  /** Bytes of the file that this backup did not store again. */
  reusedBytes: number;
}

/**
 * How a backup stores each file of the stream: relation files as blocks
 * with a block map (every backup, so that the next incremental has a map
 * to compare with), other files whole; in an incremental or differential
 * backup, a file identical to the parent's becomes a reference to the
 * backup that stores its bytes, and a relation file stores only the blocks
 * that changed.
 */
export class IncrementalStore {
  private readonly parentFiles = new Map<string, ManifestFile>();
  private readonly chainIds: Set<string>;

  constructor(
    private readonly repository: Repository,
    private readonly backupId: string,
    private readonly writer: BundleWriter,
    /** The parent and its chain (oldest first), for an incremental or differential backup. */
    private readonly parent?: { manifest: BackupManifest; chain: BackupManifest[] },
  ) {
    for (const file of parent?.manifest.files ?? []) if (file.type === 'file') this.parentFiles.set(file.path, file);
    this.chainIds = new Set([...(parent?.chain ?? []).map((m) => m.id), backupId]);
  }

  async store(source: AsyncIterable<Buffer> | Buffer[], size: number, path: string): Promise<StoredEntry> {
    const before = this.parentFiles.get(path);
    if (size > 0 && isRelationFile(path)) {
      const parent = before && (await this.parentOf(before));
      const result = await storeRelationFile(this.repository, this.backupId, this.writer, path, size, toAsync(source), parent);
      if (!result.stored) return { stored: this.referenceTo(before!), reusedBytes: result.size };
      return { stored: result.stored, reusedBytes: result.reusedBytes };
    }
    if (before && before.size === size && recordedDigest(before) && size <= REUSE_WHOLE_UP_TO) {
      const parts: Buffer[] = [];
      for await (const chunk of source) parts.push(Buffer.from(chunk));
      const content = Buffer.concat(parts);
      const hash = fileHasher(digestAlgorithmOf(before)); // identity is decided in the parent's algorithm (collision-resistant: blake3 or sha256)
      hash.update(content);
      if (content.length === size && matchesRecorded(before, hash.digest())) return { stored: this.referenceTo(before), reusedBytes: size };
      source = [content];
    }
    const stored = await this.writer.writeFile(source, size, path);
    return { stored: { compression: 'none', encryption: 'none', ...stored }, reusedBytes: 0 };
  }

  /**
   * A relation file PostgreSQL 17+ sent as an incremental file
   * (`INCREMENTAL.<name>`, stored as `path`): completed from the parent's
   * block map. The server sends one only for a file the uploaded manifest
   * (the parent's) lists, so the parent must have it, as blocks.
   */
  async storeIncremental(source: AsyncIterable<Buffer> | Buffer[], entrySize: number, path: string): Promise<StoredEntry> {
    const before = this.parentFiles.get(path);
    if (!before || !isRelationFile(path)) throw new IncrementalFileError(path, `names a file the parent backup ${this.parent?.manifest.id ?? '(none)'} does not hold as a relation file`);
    const parent = await this.parentOf(before);
    const result = await storeIncrementalFile(this.repository, this.backupId, this.writer, path, entrySize, toAsync(source), parent);
    if (!result.stored) return { stored: this.referenceTo(before), reusedBytes: result.size };
    return { stored: result.stored, reusedBytes: result.reusedBytes };
  }

  /** The parent's entry, as this backup records it: the same stored bytes, in the backup that holds them. */
  private referenceTo(before: ManifestFile): StoredFields {
    const { path: _path, type: _type, mode: _mode, mtime: _mtime, ...stored } = before;
    return { ...stored, reference: before.reference ?? this.parent!.manifest.id };
  }

  private async parentOf(entry: ManifestFile): Promise<ParentFile> {
    if (!entry.blockMap) return { entry };
    return { entry, map: await readBlockMap(this.repository, this.parent!.manifest.id, entry, this.chainIds) };
  }
}

async function* toAsync(source: AsyncIterable<Buffer> | Buffer[]): AsyncGenerator<Buffer> {
  yield* source;
}
