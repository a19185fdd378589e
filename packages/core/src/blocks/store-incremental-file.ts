import { blockListDigest } from '../codec/file-digest.js';
import type { BundleWriter } from '../repository/bundle-writer.js';
import type { Repository } from '../repository/repository.js';
import { BLOCK_DIGEST_ALGORITHM, blockDigest } from './block-digest.js';
import { BLOCK_ENTRY, BLOCKS_PER_SUPER_BLOCK, blockMapDigest, encodeBlockMap, entryDigest, entryPosition, entrySuper, type SuperBlock } from './block-map.js';
import { blockMapPlace, superBlockPlace } from './block-place.js';
import { IncrementalFileError, readIncrementalHeader } from './incremental-file.js';
import { BLOCK_SIZE } from './relation-file.js';
import type { ParentFile, StoredRelation } from './store-relation-file.js';
import { SuperBlockWriter } from './super-block-writer.js';

/**
 * Store a relation file the server sent as a PostgreSQL 17+ incremental
 * file (incremental-file.ts) under its real `path`: the blocks it carries
 * go into this backup's super blocks, every other block below its length
 * keeps the parent map's entry (a block the parent's file did not have is
 * stored as zeros, as pg_combinebackup writes it). The result is the same
 * complete block map a checksum-diff incremental writes, so restore,
 * verify and the next backup read it alike. The whole file's bytes never
 * pass here: its digest is `blake3-blocks` (codec/file-digest.ts),
 * computed from the map's block digests.
 */
export async function storeIncrementalFile(
  repository: Repository,
  backupId: string,
  writer: BundleWriter,
  path: string,
  entrySize: number,
  body: AsyncIterable<Buffer>,
  parent: ParentFile,
): Promise<StoredRelation> {
  const map = parent.map;
  // An empty file has no map (nothing to point at): every block not sent is zeros.
  if (parent.entry.size > 0 && (!map || map.algorithm !== BLOCK_DIGEST_ALGORITHM)) {
    throw new IncrementalFileError(path, `has no ${BLOCK_DIGEST_ALGORITHM} block map in the parent backup to complete it with (take a full backup: --type full)`);
  }
  const input = new ExactReader(body);
  const header = await readIncrementalHeader(`INCREMENTAL of ${path}`, entrySize, (n) => input.read(n));
  const blocks = header.truncationBlocks;
  const size = blocks * BLOCK_SIZE;
  // The parent's blocks usable: whole ones only (pg_combinebackup reads st_size / BLCKSZ of them).
  const parentBlocks = map ? Math.floor(parent.entry.size / BLOCK_SIZE) : 0;
  const codec = repository.codec;
  await codec.prepareWrite(); // refuses plaintext in an encrypted repository (checked once)
  return writer.writeSpan(header.blocks.length * BLOCK_SIZE, async (span) => {
    const superBlocks = new SuperBlockWriter(repository, span, (bundle, offset) => superBlockPlace(repository.server, backupId, path, bundle, offset).place);
    const refs = [backupId];
    const refIndex = new Map([[backupId, 0]]);
    const supers: SuperBlock[] = [];
    const fromParent = new Map<number, number>();
    const entries = Buffer.allocUnsafe(Math.max(1, blocks) * BLOCK_ENTRY);
    let spanStart: { bundle: number; offset: number } | undefined;
    let pending: Buffer | undefined; // taken when the first block is stored (most files of an incremental store none)
    let pendingLength = 0;
    let pendingIndex = -1;
    let reusedBytes = 0;
    let sameAsParent = map !== undefined && blocks === map.blockCount && parent.entry.size === size;

    const encodeInto = async (plain: Buffer, place: Buffer) => {
      const at = span.position();
      spanStart ??= at;
      let storedSize = 0;
      const emit = async (bytes: Buffer) => {
        storedSize += bytes.length;
        await span.write(bytes);
      };
      const encoder = await codec.encoder(emit, place);
      if (!encoder) await emit(Buffer.from(plain));
      else {
        await encoder.push(plain);
        await encoder.end();
      }
      return { at, storedSize };
    };
    const flush = async () => {
      const index = pendingIndex;
      await superBlocks.add(pending!, pendingLength, (stored) => {
        spanStart ??= { bundle: stored.bundle, offset: stored.offset };
        supers[index] = { ref: 0, ...stored };
      });
      pending = undefined;
      pendingLength = 0;
    };
    const storeNew = async (index: number, block: Buffer) => {
      if (pendingLength === 0) pendingIndex = supers.push({ ref: 0, bundle: 0, offset: 0, storedSize: 0, plainSize: 0, compression: 'none', encryption: 'none' }) - 1;
      const at = index * BLOCK_ENTRY;
      entries.writeUInt32BE(pendingIndex, at);
      entries.writeUInt16BE(pendingLength / BLOCK_SIZE, at + 4);
      blockDigest(block).copy(entries, at + 6);
      block.copy((pending ??= superBlocks.buffer()), pendingLength);
      pendingLength += BLOCK_SIZE;
      if (pendingLength === BLOCKS_PER_SUPER_BLOCK * BLOCK_SIZE) await flush();
    };
    const keepParent = (index: number) => {
      if (!map) throw new Error('no parent map'); // parentBlocks is 0 without one
      const theirs = entrySuper(map, index);
      let ours = fromParent.get(theirs);
      if (ours === undefined) {
        const owner = map.refs[map.supers[theirs].ref];
        let ref = refIndex.get(owner);
        if (ref === undefined) refIndex.set(owner, (ref = refs.push(owner) - 1));
        fromParent.set(theirs, (ours = supers.push({ ...map.supers[theirs], ref }) - 1));
      }
      const at = index * BLOCK_ENTRY;
      entries.writeUInt32BE(ours, at);
      entries.writeUInt16BE(entryPosition(map, index), at + 4);
      entryDigest(map, index).copy(entries, at + 6);
      reusedBytes += BLOCK_SIZE;
    };

    const zero = Buffer.alloc(BLOCK_SIZE);
    let next = 0; // index into header.blocks
    for (let index = 0; index < blocks; index++) {
      if (next < header.blocks.length && header.blocks[next] === index) {
        const block = await input.read(BLOCK_SIZE);
        if (block.length !== BLOCK_SIZE) throw new IncrementalFileError(`INCREMENTAL of ${path}`, `ends inside block ${index}`);
        if (sameAsParent && !blockDigest(block).equals(entryDigest(map!, index))) sameAsParent = false;
        await storeNew(index, block);
        next++;
      } else if (index < parentBlocks) keepParent(index);
      else {
        sameAsParent = false;
        await storeNew(index, zero);
      }
    }
    if (!(await input.atEnd())) throw new IncrementalFileError(`INCREMENTAL of ${path}`, 'has bytes after its last block');
    if (pendingLength > 0) await flush();
    await superBlocks.finish();
    const digest = blockListDigest(Array.from({ length: blocks }, (_, i) => entries.subarray(i * BLOCK_ENTRY + 6, (i + 1) * BLOCK_ENTRY)));
    // Every block as the parent has it: the caller records a reference (nothing of this span was written).
    if (sameAsParent && spanStart === undefined) return { size, digest, reusedBytes: size };

    const encoded = encodeBlockMap({ algorithm: BLOCK_DIGEST_ALGORITHM, refs, supers, blockCount: blocks, entries });
    const stored = await encodeInto(encoded, blockMapPlace(repository.server, backupId, path).place);
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
        blockMap: { offset: stored.at.offset, storedSize: stored.storedSize, size: encoded.length, sha256: blockMapDigest(encoded) },
      },
    };
  });
}

/** Exact-length reads from a chunked stream (a tar entry's body). */
class ExactReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private held: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** `n` bytes, or fewer when the stream ends first. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      if (this.held.length === 0) {
        if (this.done) break;
        const { value, done } = await this.iterator.next();
        if (done) {
          this.done = true;
          break;
        }
        this.held = Buffer.from(value);
      }
      const take = this.held.subarray(0, n - have);
      this.held = this.held.subarray(take.length);
      parts.push(take);
      have += take.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  async atEnd(): Promise<boolean> {
    return (await this.read(1)).length === 0;
  }
}
