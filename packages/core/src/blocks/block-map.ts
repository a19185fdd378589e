import { createHash } from 'node:crypto';
import { isBackupId } from '../repository/backup-id.js';
import { BLOCK_DIGEST_BYTES, isBlockDigestAlgorithm } from './block-digest.js';
import { BLOCK_SIZE, blockCount } from './relation-file.js';

/**
 * A block map: for each 8 KiB block of one relation file, its digest and
 * where its bytes are stored, in this backup or an earlier one of its
 * chain. Every map is complete, so the next incremental compares against
 * one map only. Changed blocks are stored in super blocks: runs of up to
 * SUPER_BLOCK_SIZE bytes of blocks, each compressed and encrypted on its
 * own, so that a restore reads only the super blocks it needs.
 *
 * Binary layout (big-endian; docs/repository-format.md):
 *   "PGHBMAP1", u8 n + digest algorithm name (n bytes), u32 block size,
 *   u32 block count, u16 reference count, per reference u8 n + backup id,
 *   u32 super block count, per super block: u16 reference, u32 bundle,
 *   u48 offset, u32 stored size, u32 plain size, u8 encoding (low bits:
 *   compression none/gzip/lz4/zstd; 0x80: aes-256-gcm);
 *   per block: u32 super block, u16 position in it, digest (16 bytes).
 */
export const SUPER_BLOCK_SIZE = 1024 * 1024;
export const BLOCKS_PER_SUPER_BLOCK = SUPER_BLOCK_SIZE / BLOCK_SIZE;
const MAGIC = Buffer.from('PGHBMAP1', 'latin1');
const SUPER_ENTRY = 21;
const COMPRESSIONS = ['none', 'gzip', 'lz4', 'zstd'];
const ENCRYPTED = 0x80;
export const BLOCK_ENTRY = 4 + 2 + BLOCK_DIGEST_BYTES;
/** Backups a map may point into: a chain longer than this is refused (keep a full every few hundred backups). */
export const MAX_MAP_REFERENCES = 1000;
/** A super block's stored size may exceed its plain size by this much (frame headers, encryption chunk tags). */
const STORED_SLACK = 64 * 1024;

export interface SuperBlock {
  /** Index into `refs`: the backup whose bundle holds it. */
  ref: number;
  bundle: number;
  offset: number;
  storedSize: number;
  plainSize: number;
  /** How it is stored: a super block keeps its own backup's settings, whatever the file's entry in a later backup says. */
  compression: string;
  encryption: string;
}

export interface BlockMap {
  algorithm: string;
  /** Backup ids the super blocks belong to. */
  refs: string[];
  supers: SuperBlock[];
  blockCount: number;
  /** blockCount packed entries of BLOCK_ENTRY bytes: super block (u32), position (u16), digest. */
  entries: Buffer;
}

export function entrySuper(map: BlockMap, block: number): number {
  return map.entries.readUInt32BE(block * BLOCK_ENTRY);
}

export function entryPosition(map: BlockMap, block: number): number {
  return map.entries.readUInt16BE(block * BLOCK_ENTRY + 4);
}

export function entryDigest(map: BlockMap, block: number): Buffer {
  const at = block * BLOCK_ENTRY + 6;
  return map.entries.subarray(at, at + BLOCK_DIGEST_BYTES);
}

/** The largest map a file of `size` bytes can have: what a manifest may claim and a reader will accept. */
export function maxBlockMapSize(size: number): number {
  const blocks = blockCount(size);
  return MAGIC.length + 1 + 255 + 4 + 4 + 2 + MAX_MAP_REFERENCES * 65 + 4 + blocks * (SUPER_ENTRY + BLOCK_ENTRY);
}

export function encodeBlockMap(map: BlockMap): Buffer {
  const head: Buffer[] = [MAGIC, Buffer.from([map.algorithm.length]), Buffer.from(map.algorithm, 'latin1')];
  const counts = Buffer.alloc(10);
  counts.writeUInt32BE(BLOCK_SIZE, 0);
  counts.writeUInt32BE(map.blockCount, 4);
  counts.writeUInt16BE(map.refs.length, 8);
  head.push(counts);
  for (const ref of map.refs) head.push(Buffer.from([ref.length]), Buffer.from(ref, 'latin1'));
  const supers = Buffer.alloc(4 + map.supers.length * SUPER_ENTRY);
  supers.writeUInt32BE(map.supers.length, 0);
  map.supers.forEach((s, i) => {
    const at = 4 + i * SUPER_ENTRY;
    supers.writeUInt16BE(s.ref, at);
    supers.writeUInt32BE(s.bundle, at + 2);
    supers.writeUIntBE(s.offset, at + 6, 6);
    supers.writeUInt32BE(s.storedSize, at + 12);
    supers.writeUInt32BE(s.plainSize, at + 16);
    const compression = COMPRESSIONS.indexOf(s.compression);
    if (compression < 0 || (s.encryption !== 'none' && s.encryption !== 'aes-256-gcm')) throw new Error(`a super block cannot be stored as ${s.compression}/${s.encryption}`);
    supers[at + 20] = compression | (s.encryption === 'none' ? 0 : ENCRYPTED);
  });
  return Buffer.concat([...head, supers, map.entries.subarray(0, map.blockCount * BLOCK_ENTRY)]);
}

export function blockMapDigest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class BlockMapError extends Error {}

/**
 * Parse and check a map read from a repository (untrusted): it must
 * describe exactly a file of `size` bytes, point only into `chain`
 * (the backup ids restore has checked), and every block must lie inside
 * its super block. Any problem throws BlockMapError saying what.
 */
export function decodeBlockMap(bytes: Buffer, size: number, chain: ReadonlySet<string>): BlockMap {
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new BlockMapError(`is truncated (${bytes.length} bytes)`);
    const start = at;
    at += n;
    return start;
  };
  if (!bytes.subarray(need(MAGIC.length), MAGIC.length).equals(MAGIC)) throw new BlockMapError('is not a pgharbor block map');
  const algorithmLength = bytes[need(1)];
  const algorithm = bytes.toString('latin1', need(algorithmLength), at);
  if (!isBlockDigestAlgorithm(algorithm)) throw new BlockMapError(`names block digest ${JSON.stringify(algorithm)}, which this pgharbor does not know`);
  const counts = need(10);
  if (bytes.readUInt32BE(counts) !== BLOCK_SIZE) throw new BlockMapError(`has blocks of ${bytes.readUInt32BE(counts)} bytes, not ${BLOCK_SIZE}`);
  const count = bytes.readUInt32BE(counts + 4);
  if (count !== blockCount(size)) throw new BlockMapError(`has ${count} blocks, but the file has ${size} bytes (${blockCount(size)} blocks)`);
  const refCount = bytes.readUInt16BE(counts + 8);
  if (refCount > MAX_MAP_REFERENCES) throw new BlockMapError(`points into ${refCount} backups (at most ${MAX_MAP_REFERENCES})`);
  const refs: string[] = [];
  for (let i = 0; i < refCount; i++) {
    const length = bytes[need(1)];
    const ref = bytes.toString('latin1', need(length), at);
    if (!isBackupId(ref)) throw new BlockMapError(`names ${JSON.stringify(ref)}, which is not a backup id`);
    if (!chain.has(ref)) throw new BlockMapError(`points into backup ${ref}, which is not in this backup's chain`);
    refs.push(ref);
  }
  const superCount = bytes.readUInt32BE(need(4));
  if (superCount > count) throw new BlockMapError(`has ${superCount} super blocks for ${count} blocks`);
  const supers: SuperBlock[] = [];
  const superStart = need(superCount * SUPER_ENTRY);
  for (let i = 0; i < superCount; i++) {
    const s = superStart + i * SUPER_ENTRY;
    const entry: SuperBlock = {
      ref: bytes.readUInt16BE(s),
      bundle: bytes.readUInt32BE(s + 2),
      offset: bytes.readUIntBE(s + 6, 6),
      storedSize: bytes.readUInt32BE(s + 12),
      plainSize: bytes.readUInt32BE(s + 16),
      compression: COMPRESSIONS[bytes[s + 20] & 0x7f],
      encryption: bytes[s + 20] & ENCRYPTED ? 'aes-256-gcm' : 'none',
    };
    if (entry.compression === undefined) throw new BlockMapError(`super block ${i} names an unknown compression (${bytes[s + 20] & 0x7f})`);
    if (entry.ref >= refCount) throw new BlockMapError(`super block ${i} names reference ${entry.ref} of ${refCount}`);
    if (entry.bundle < 1) throw new BlockMapError(`super block ${i} names bundle 0`);
    if (entry.plainSize < 1 || entry.plainSize > SUPER_BLOCK_SIZE) throw new BlockMapError(`super block ${i} holds ${entry.plainSize} bytes (1 to ${SUPER_BLOCK_SIZE})`);
    if (entry.storedSize < 1 || entry.storedSize > entry.plainSize + STORED_SLACK) throw new BlockMapError(`super block ${i} is stored in ${entry.storedSize} bytes for ${entry.plainSize}`);
    supers.push(entry);
  }
  const entries = bytes.subarray(need(count * BLOCK_ENTRY), at);
  if (at !== bytes.length) throw new BlockMapError(`has ${bytes.length - at} bytes after its last block`);
  const map: BlockMap = { algorithm, refs, supers, blockCount: count, entries };
  for (let block = 0; block < count; block++) {
    const s = entrySuper(map, block);
    if (s >= superCount) throw new BlockMapError(`block ${block} names super block ${s} of ${superCount}`);
    const length = Math.min(BLOCK_SIZE, size - block * BLOCK_SIZE);
    if (entryPosition(map, block) * BLOCK_SIZE + length > supers[s].plainSize) throw new BlockMapError(`block ${block} lies outside its super block ${s}`);
  }
  return map;
}
