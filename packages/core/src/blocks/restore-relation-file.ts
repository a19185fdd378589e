import { constants as fsConstants, promises as fs } from 'node:fs';
import { HarborError, errorMessage } from '../errors.js';
import type { ManifestFile } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { ChunkReader } from '../restore/chunk-reader.js';
import { FILE_CREATE_FLAGS } from '../restore/contained-tree.js';
import { checkDigest, digestAlgorithmOf, digestOfLocalFile, fileHasher } from '../codec/file-digest.js';
import { blockDigest } from './block-digest.js';
import { entryDigest, entryPosition, entrySuper, type BlockMap, type SuperBlock } from './block-map.js';
import { superBlockPlace } from './block-place.js';
import { BLOCK_SIZE } from './relation-file.js';

export interface RelationRestore {
  /** Bytes of blocks written (the others were already right: delta restore). */
  writtenBytes: number;
}

/**
 * Write one block-mapped file at `target` from its map: each super block
 * it needs is read once (adjacent ones of the same bundle in one ranged
 * read), decoded at its place, and each of its blocks checked against the
 * map's digest before it is written at its offset. `delta`: the file is
 * there already; only blocks whose digest differs from the map's are
 * written, and the file is cut or extended to its size. The whole file's
 * digest is checked at the end.
 */
export async function restoreRelationFile(repository: Repository, file: ManifestFile, map: BlockMap, target: string, delta: boolean): Promise<RelationRestore> {
  const handle = delta ? await fs.open(target, fsConstants.O_RDWR | fsConstants.O_NOFOLLOW) : await fs.open(target, FILE_CREATE_FLAGS, file.mode & 0o777 || 0o600);
  try {
    const needed = delta ? await changedBlocks(handle, file, map) : allBlocks(map);
    const bySuper = new Map<number, number[]>();
    for (const block of needed) {
      const s = entrySuper(map, block);
      let list = bySuper.get(s);
      if (!list) bySuper.set(s, (list = []));
      list.push(block);
    }
    const order = [...bySuper.keys()].sort((a, b) => compareSupers(map, a, b));
    // Every block, in file order (a full, or a file stored whole in one backup): the whole file is
    // hashed as it is written and its digest checked at the end, which covers every block, so blocks
    // are not digested one by one. Otherwise each block is checked against the map before it is
    // written, and the whole file is read back for its digest.
    const inOrder = !delta && needed.length === map.blockCount && order.flatMap((index) => bySuper.get(index)!).every((block, i) => block === i);
    const hash = inOrder ? fileHasher(digestAlgorithmOf(file)) : undefined;
    let writtenBytes = 0;
    for (const run of adjacentRuns(map, order)) {
      const first = map.supers[run[0]];
      const last = map.supers[run.at(-1)!];
      const owner = map.refs[first.ref];
      const key = repository.bundleKey(owner, first.bundle);
      const reader = new ChunkReader(await repository.storage.get(key, { offset: first.offset, length: last.offset + last.storedSize - first.offset }));
      try {
        for (const index of run) {
          const plain = await decodeSuper(repository, file, owner, map.supers[index], reader);
          const blocks = bySuper.get(index)!;
          // Blocks next to each other both in the super block and in the file are written at once (a full: 1 MiB a write).
          for (let i = 0; i < blocks.length; ) {
            let j = i + 1;
            while (j < blocks.length && blocks[j] === blocks[j - 1] + 1 && entryPosition(map, blocks[j]) === entryPosition(map, blocks[j - 1]) + 1) j++;
            const from = entryPosition(map, blocks[i]) * BLOCK_SIZE;
            const length = Math.min((j - i) * BLOCK_SIZE, file.size - blocks[i] * BLOCK_SIZE);
            const bytes = plain.subarray(from, from + length);
            if (bytes.length !== length) throw damaged(file, `super block ${index} of backup ${owner} is shorter than its blocks`);
            if (hash) hash.update(bytes);
            else {
              for (let k = i; k < j; k++) {
                const at = (k - i) * BLOCK_SIZE;
                if (!blockDigest(bytes.subarray(at, at + BLOCK_SIZE), map.algorithm).equals(entryDigest(map, blocks[k]))) {
                  throw damaged(file, `block ${blocks[k]} (in super block ${index} of backup ${owner}) does not match its digest in the block map`);
                }
              }
            }
            for (let done = 0; done < length; ) done += (await handle.write(bytes, done, length - done, blocks[i] * BLOCK_SIZE + done)).bytesWritten;
            writtenBytes += length;
            i = j;
          }
        }
      } finally {
        await reader.close();
      }
    }
    if (delta) await handle.truncate(file.size);
    checkDigest(file, hash ? hash.digest() : await digestOfLocalFile(target, digestAlgorithmOf(file)));
    if (file.mtime) await handle.utimes(file.mtime, file.mtime);
    return { writtenBytes };
  } finally {
    await handle.close();
  }
}

function allBlocks(map: BlockMap): number[] {
  return Array.from({ length: map.blockCount }, (_, i) => i);
}

/** Blocks of the existing file that differ from the map (or are missing from it). */
async function changedBlocks(handle: fs.FileHandle, file: ManifestFile, map: BlockMap): Promise<number[]> {
  const changed: number[] = [];
  const buffer = Buffer.allocUnsafe(128 * BLOCK_SIZE);
  const existing = (await handle.stat()).size;
  for (let first = 0; first < map.blockCount; first += 128) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, first * BLOCK_SIZE);
    for (let block = first; block < Math.min(map.blockCount, first + 128); block++) {
      const length = Math.min(BLOCK_SIZE, file.size - block * BLOCK_SIZE);
      const at = (block - first) * BLOCK_SIZE;
      if (block * BLOCK_SIZE + length > existing || at + length > bytesRead || !blockDigest(buffer.subarray(at, at + length), map.algorithm).equals(entryDigest(map, block))) changed.push(block);
    }
  }
  return changed;
}

function compareSupers(map: BlockMap, a: number, b: number): number {
  const [x, y] = [map.supers[a], map.supers[b]];
  const owners = map.refs[x.ref].localeCompare(map.refs[y.ref]);
  return owners || x.bundle - y.bundle || x.offset - y.offset;
}

/** Consecutive super blocks stored back to back in one bundle: read with one ranged get. */
function adjacentRuns(map: BlockMap, order: number[]): number[][] {
  const runs: number[][] = [];
  for (const index of order) {
    const run = runs.at(-1);
    const previous = run && map.supers[run.at(-1)!];
    const s = map.supers[index];
    if (previous && previous.ref === s.ref && previous.bundle === s.bundle && previous.offset + previous.storedSize === s.offset) run!.push(index);
    else runs.push([index]);
  }
  return runs;
}

async function decodeSuper(repository: Repository, file: ManifestFile, owner: string, s: SuperBlock, reader: ChunkReader): Promise<Buffer> {
  const parts: Buffer[] = [];
  try {
    const decoded = await repository.codec.decoder(reader.take(s.storedSize), s, superBlockPlace(repository.server, owner, file.path, s.bundle, s.offset), { bytes: s.plainSize, exact: true });
    for await (const chunk of decoded) parts.push(Buffer.from(chunk));
  } catch (error) {
    throw error instanceof HarborError ? error : damaged(file, `its super block at ${s.bundle}:${s.offset} of backup ${owner} cannot be decoded: ${errorMessage(error)}`, error);
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

function damaged(file: ManifestFile, reason: string, cause?: unknown): HarborError {
  return new HarborError(`file ${file.path}: ${reason}`, {
    hint: 'the repository copy is damaged or was altered (a super block swapped or changed); restore another backup, run pgharbor verify',
    cause,
  });
}
