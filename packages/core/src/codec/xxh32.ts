/**
 * xxHash32 (seed 0), the checksum of LZ4 frames: of the frame descriptor
 * (its second byte), of each block when the frame asks for block
 * checksums, of the whole content when it asks for a content checksum.
 * pgharbor's own frames carry only the descriptor's; the `lz4` tool writes
 * a content checksum by default.
 */
const PRIME1 = 0x9e3779b1;
const PRIME2 = 0x85ebca77;
const PRIME3 = 0xc2b2ae3d;
const PRIME4 = 0x27d4eb2f;
const PRIME5 = 0x165667b1;

/** xxHash32 of bytes[start, end), as an unsigned 32-bit number. */
export function xxh32(bytes: Uint8Array, start: number, end: number): number {
  let at = start;
  let hash: number;
  if (end - start >= 16) {
    let v1 = (PRIME1 + PRIME2) | 0;
    let v2 = PRIME2;
    let v3 = 0;
    let v4 = -PRIME1 | 0;
    for (const last = end - 16; at <= last; at += 16) {
      v1 = round(v1, word(bytes, at));
      v2 = round(v2, word(bytes, at + 4));
      v3 = round(v3, word(bytes, at + 8));
      v4 = round(v4, word(bytes, at + 12));
    }
    hash = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
  } else hash = PRIME5;
  hash = (hash + (end - start)) | 0;
  for (; at + 4 <= end; at += 4) hash = Math.imul(rotl(hash + Math.imul(word(bytes, at), PRIME3), 17), PRIME4);
  for (; at < end; at++) hash = Math.imul(rotl(hash + Math.imul(bytes[at], PRIME5), 11), PRIME1);
  hash = Math.imul(hash ^ (hash >>> 15), PRIME2);
  hash = Math.imul(hash ^ (hash >>> 13), PRIME3);
  return (hash ^ (hash >>> 16)) >>> 0;
}

function round(acc: number, lane: number): number {
  return Math.imul(rotl(acc + Math.imul(lane, PRIME2), 13), PRIME1);
}

function rotl(x: number, bits: number): number {
  return (x << bits) | (x >>> (32 - bits));
}

function word(bytes: Uint8Array, at: number): number {
  return bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
}
