import { fileHasher, matchesRecorded } from '../codec/file-digest.js';
import type { BundleWriter } from '../repository/bundle-writer.js';
import type { ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { BLOCK_DIGEST_ALGORITHM, blockDigest } from './block-digest.js';
import { BLOCK_ENTRY, BLOCKS_PER_SUPER_BLOCK, blockMapDigest, encodeBlockMap, entryDigest, entryPosition, entrySuper, type BlockMap, type SuperBlock } from './block-map.js';
import { blockMapPlace, superBlockPlace } from './block-place.js';
import { SuperBlockWriter } from './super-block-writer.js';
import { BLOCK_SIZE, blockCount } from './relation-file.js';

/** The parent backup's state of a file: its entry and, when it has one, its (checked) block map. */
export interface ParentFile {
  entry: ManifestFile;
  map?: BlockMap;
}

export type StoredFields = Omit<ManifestFile, 'path' | 'type' | 'mode' | 'mtime'>;

export interface StoredRelation {
  /** Undefined when the file is exactly the parent's (the caller records a reference instead). */
  stored?: StoredFields;
  size: number;
  /** `"<algorithm>:<hex>"` of the whole file (codec/file-digest.ts). */
  digest: string;
  /** Bytes of blocks found unchanged in the parent's map (stored by an earlier backup). */
  reusedBytes: number;
}

/**
 * Store one relation file as blocks: each 8 KiB block is digested; a block
 * whose digest equals the parent map's at the same index keeps the
 * parent's entry (it points into an older backup), every other block goes
 * into this backup's super blocks (up to 1 MiB of blocks each, encoded on
 * their own, bound to their place). Then the complete map. Without a
 * parent (a full), every block is stored, in file order.
 */
export async function storeRelationFile(
  repository: Repository,
  backupId: string,
  writer: BundleWriter,
  path: string,
  sizeHint: number,
  body: AsyncIterable<Buffer>,
  parent: ParentFile | undefined,
): Promise<StoredRelation> {
  const codec = repository.codec;
  const parentMap = parent?.map?.algorithm === BLOCK_DIGEST_ALGORITHM ? parent.map : undefined; // digests of another algorithm compare to nothing
  await codec.prepareWrite(); // refuses plaintext in an encrypted repository (checked once)
  return writer.writeSpan(sizeHint, async (span) => {
    const superBlocks = new SuperBlockWriter(repository, span, (bundle, offset) => superBlockPlace(repository.server, backupId, path, bundle, offset).place);
    const hash = fileHasher();
    const refs = [backupId];
    const refIndex = new Map([[backupId, 0]]);
    const supers: SuperBlock[] = [];
    const fromParent = new Map<number, number>(); // parent's super block index → ours
    let entries = Buffer.allocUnsafe(Math.max(1, blockCount(sizeHint)) * BLOCK_ENTRY);
    let blocks = 0;
    let size = 0;
    let reusedBytes = 0;
    let spanStart: { bundle: number; offset: number } | undefined;
    let pending: Buffer | undefined; // taken when the first block is stored (most relation files are small, many unchanged)
    let pendingLength = 0;
    let pendingIndex = -1;
    const carry = Buffer.allocUnsafe(BLOCK_SIZE);
    let carried = 0;

    const addEntry = (superIndex: number, position: number, digest: Buffer) => {
      if ((blocks + 1) * BLOCK_ENTRY > entries.length) entries = Buffer.concat([entries, Buffer.alloc(entries.length)]); // the file grew while read
      const at = blocks * BLOCK_ENTRY;
      entries.writeUInt32BE(superIndex, at);
      entries.writeUInt16BE(position, at + 4);
      digest.copy(entries, at + 6);
    };

    const encodeInto = async (plain: Buffer, place: Buffer): Promise<{ at: { bundle: number; offset: number }; storedSize: number }> => {
      const at = span.position();
      spanStart ??= at;
      let storedSize = 0;
      const emit = async (bytes: Buffer) => {
        storedSize += bytes.length;
        await span.write(bytes);
      };
      const encoder = await codec.encoder(emit, place);
      if (!encoder) await emit(Buffer.from(plain)); // the stream keeps what it is given: never the reused buffer
      else {
        await encoder.push(plain);
        await encoder.end();
      }
      return { at, storedSize };
    };

    // Stored as they are: blocks are kept as the slices they arrived in (see SuperBlockWriter.addPlain).
    const plain = codec.isIdentity;
    let plainBlocks: Buffer[] = [];
    const flush = async () => {
      const index = pendingIndex;
      const done = (stored: Omit<SuperBlock, 'ref'>) => {
        spanStart ??= { bundle: stored.bundle, offset: stored.offset };
        supers[index] = { ref: 0, ...stored };
      };
      if (plain) {
        await superBlocks.addPlain(plainBlocks, done);
        plainBlocks = [];
      } else {
        await superBlocks.add(pending!, pendingLength, done);
        pending = undefined;
      }
      pendingLength = 0;
    };

    /** Digest and place one block; true when a super block is full and must be flushed (the only await, kept out of the per-block path). */
    const onBlock = (block: Buffer, reused: boolean): boolean => {
      const digest = blockDigest(block);
      if (parentMap && blocks < parentMap.blockCount && entryDigest(parentMap, blocks).equals(digest)) {
        const theirs = entrySuper(parentMap, blocks);
        let ours = fromParent.get(theirs);
        if (ours === undefined) {
          const owner = parentMap.refs[parentMap.supers[theirs].ref];
          let ref = refIndex.get(owner);
          if (ref === undefined) refIndex.set(owner, (ref = refs.push(owner) - 1));
          fromParent.set(theirs, (ours = supers.push({ ...parentMap.supers[theirs], ref }) - 1));
        }
        addEntry(ours, entryPosition(parentMap, blocks), digest);
        reusedBytes += block.length;
      } else {
        if (pendingLength === 0) pendingIndex = supers.push({ ref: 0, bundle: 0, offset: 0, storedSize: 0, plainSize: 0, compression: 'none', encryption: 'none' }) - 1; // filled in by flush
        addEntry(pendingIndex, pendingLength / BLOCK_SIZE, digest);
        if (!plain) block.copy((pending ??= superBlocks.buffer()), pendingLength);
        else plainBlocks.push(reused ? Buffer.from(block) : block); // the carry buffer is reused: that block alone is copied
        pendingLength += block.length;
      }
      blocks++;
      return pendingLength === BLOCKS_PER_SUPER_BLOCK * BLOCK_SIZE;
    };

    for await (const chunk of body) {
      hash.update(chunk);
      size += chunk.length;
      let at = 0;
      if (carried > 0) {
        const n = chunk.copy(carry, carried, 0, Math.min(chunk.length, BLOCK_SIZE - carried));
        carried += n;
        at = n;
        if (carried < BLOCK_SIZE) continue;
        if (onBlock(carry, true)) await flush();
        carried = 0;
      }
      for (; chunk.length - at >= BLOCK_SIZE; at += BLOCK_SIZE) if (onBlock(chunk.subarray(at, at + BLOCK_SIZE), false)) await flush();
      carried = chunk.copy(carry, 0, at);
    }
    if (carried > 0 && onBlock(carry.subarray(0, carried), true)) await flush();
    if (pendingLength > 0) await flush();
    await superBlocks.finish();
    const digest = hash.digest();

    // The same bytes as the parent's (judged in its algorithm: another one never matches, and the file is kept as blocks).
    if (parent && spanStart === undefined && parent.entry.size === size && matchesRecorded(parent.entry, digest)) return { size, digest, reusedBytes: size };

    const map = encodeBlockMap({ algorithm: BLOCK_DIGEST_ALGORITHM, refs, supers, blockCount: blocks, entries });
    const stored = await encodeInto(map, blockMapPlace(repository.server, backupId, path).place);
    const start = spanStart!;
    return {
      size,
      digest,
      reusedBytes,
      stored: {
        size,
        digest,
        bundle: start.bundle,
        offset: start.offset,
        storedSize: stored.at.offset + stored.storedSize - start.offset,
        compression: codec.compression,
        encryption: codec.encryption,
        blockMap: { offset: stored.at.offset, storedSize: stored.storedSize, size: map.length, sha256: blockMapDigest(map) },
      },
    };
  });
}


