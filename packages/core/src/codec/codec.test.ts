import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Encoder, decodeStream, encodeBuffer, FRAME_SIZE } from './stream-codec.js';
import { loadCompressor } from './compressors.js';
import { HEADER_SIZE, Sealer, TAG_SIZE, Unsealer, objectPlace, sealedSize } from './cipher.js';
import { FrameSplitter } from './frames.js';
import { resolveCodecSettings } from './codec-settings.js';
import { decodeLz4Frame } from './lz4-decode.js';

/** Mixed content: compressible text, zeros and random bytes, not aligned to frames. */
function sample(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) {
    const kind = (i / 4096) % 3;
    const end = Math.min(size, i + 4096);
    if (kind === 0) out.write(`row ${i} of the pgbench_accounts table `.repeat(200).slice(0, end - i), i, 'latin1');
    else if (kind === 2) randomBytes(end - i).copy(out, i);
  }
  return out;
}

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of source) parts.push(part);
  return Buffer.concat(parts);
}

const key = randomBytes(32);
const place = objectPlace('file', 'pg', '20261125T000000', 'base/5/1259');
const seal = { key, place };

describe('stream codec', () => {
  const data = sample(3 * FRAME_SIZE + 12345);
  for (const compression of ['none', 'gzip', 'lz4', 'zstd'] as const) {
    for (const encrypted of [false, true]) {
      it(`round-trips ${compression}${encrypted ? ' + aes-256-gcm' : ''} through odd chunk sizes`, async () => {
        const stored: Buffer[] = [];
        const compressor = compression === 'none' ? undefined : await loadCompressor(compression);
        const encoder = new Encoder(compressor, undefined, encrypted ? seal : undefined, (b) => void stored.push(Buffer.from(b)));
        for await (const chunk of chunked(data, 70_001)) await encoder.push(chunk);
        await encoder.end();
        const bytes = Buffer.concat(stored);
        if (compression !== 'none') expect(bytes.length).toBeLessThan(data.length);
        if (encrypted && compression === 'none') expect(bytes.length).toBe(sealedSize(data.length));
        const back = await collect(decodeStream(chunked(bytes, 33_333), compression, encrypted ? seal : undefined));
        expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      });
    }
  }

  it('lz4 frames made of blocks: the lz4 tool, lz4-napi and our decoder read them; random data is stored as it is', async () => {
    const lz4 = await loadCompressor('lz4');
    const napi = createRequire(import.meta.url)('lz4-napi') as typeof import('lz4-napi'); // an independent reader (a devDependency)
    const random = randomBytes(300_000);
    const big = sample(9 * 1024 * 1024 + 7); // three blocks of at most 4 MiB
    for (const input of [data, random, big, Buffer.alloc(0)]) {
      const frame = await lz4.compress(input, undefined);
      expect(decodeLz4Frame(frame).equals(input)).toBe(true);
      expect(napi.decompressFrameSync(frame).equals(input)).toBe(true); // lz4_flex checks the header checksum
      expect(execFileSync('lz4', ['-d', '-c'], { input: frame, maxBuffer: 64 << 20 }).equals(input)).toBe(true);
    }
    expect((await lz4.compress(random, undefined)).length).toBe(random.length + 7 + 4 + 4); // header, block size, end mark
  });

  it('writes standard frames: zstd and lz4 frames split where the tools would', async () => {
    for (const kind of ['lz4', 'zstd'] as const) {
      const bytes = await encodeBuffer(data, kind, undefined, undefined);
      const splitter = new FrameSplitter(kind);
      const frames = [...splitter.push(bytes.subarray(0, 100)), ...splitter.push(bytes.subarray(100))];
      splitter.end();
      expect(frames.length).toBe(4);
    }
  });

  it('a damaged or truncated compressed stream fails', async () => {
    const bytes = await encodeBuffer(data, 'zstd', 1, undefined);
    await expect(collect(decodeStream(chunked(bytes.subarray(0, bytes.length - 10), 1000), 'zstd', undefined))).rejects.toThrow(/truncated/);
    const flipped = Buffer.from(bytes);
    flipped[0] ^= 0xff;
    await expect(collect(decodeStream(chunked(flipped, 1000), 'zstd', undefined))).rejects.toThrow(/not a zstd frame/);
  });
});

describe('lz4 decoder', () => {
  const napi = createRequire(import.meta.url)('lz4-napi') as typeof import('lz4-napi');
  it('decodes what we write and what lz4-napi wrote (older repositories), and fails cleanly on damaged frames', async () => {
    const lz4 = await loadCompressor('lz4');
    for (const data of [sample(FRAME_SIZE), Buffer.alloc(FRAME_SIZE, 7), randomBytes(100_000), Buffer.alloc(0), Buffer.from('x')]) {
      const frame = await lz4.compress(data, undefined);
      expect(decodeLz4Frame(frame).equals(data)).toBe(true);
      expect(decodeLz4Frame(napi.compressFrameSync(data)).equals(data)).toBe(true); // what pgharbor 0.1 stored
    }
    const frame = await lz4.compress(sample(200_000), undefined);
    for (let i = 0; i < 300; i++) {
      const damaged = Buffer.from(frame);
      damaged[7 + ((i * 7919) % (frame.length - 7))] ^= 1 + (i % 255);
      try {
        decodeLz4Frame(damaged); // may decode to other bytes (sha256 catches those) but must never hang or overrun
      } catch (error) {
        expect((error as Error).message).toMatch(/lz4/);
      }
    }
  });
});

describe('chunked AES-256-GCM', () => {
  const plain = sample(5 * 256 * 1024 + 77);
  const seal = (data: Buffer) => {
    const sealer = new Sealer({ key, place });
    return Buffer.concat([...sealer.push(data), ...sealer.end()]);
  };
  const open = (data: Buffer, k = key, at = place, legacy = false) => {
    const unsealer = new Unsealer({ key: k, place: at, legacy });
    return Buffer.concat([...unsealer.push(data), ...unsealer.end()]);
  };
  const chunk = 256 * 1024 + TAG_SIZE;

  it('round-trips, also empty and exactly one chunk', () => {
    expect(open(seal(plain)).equals(plain)).toBe(true);
    expect(open(seal(Buffer.alloc(0))).length).toBe(0);
    const one = plain.subarray(0, 256 * 1024);
    expect(seal(one).length).toBe(HEADER_SIZE + chunk);
    expect(open(seal(one)).equals(one)).toBe(true);
  });

  it('the same plaintext never encrypts the same way twice', () => {
    expect(seal(plain).equals(seal(plain))).toBe(false);
  });

  it('detects a flipped byte, truncation, reordering, an appended chunk and another key', () => {
    const sealed = seal(plain);
    const flipped = Buffer.from(sealed);
    flipped[HEADER_SIZE + chunk + 5] ^= 1;
    expect(() => open(flipped)).toThrow(/chunk 1 failed authentication/);
    // Drop the final chunk: the new last chunk was not sealed as final.
    expect(() => open(sealed.subarray(0, HEADER_SIZE + 5 * chunk))).toThrow(/last\) failed authentication/);
    expect(() => open(sealed.subarray(0, sealed.length - 3))).toThrow(/failed authentication/);
    const swapped = Buffer.concat([sealed.subarray(0, HEADER_SIZE), sealed.subarray(HEADER_SIZE + chunk, HEADER_SIZE + 2 * chunk), sealed.subarray(HEADER_SIZE, HEADER_SIZE + chunk), sealed.subarray(HEADER_SIZE + 2 * chunk)]);
    expect(() => open(swapped)).toThrow(/chunk 0 failed authentication/);
    expect(() => open(Buffer.concat([sealed, sealed.subarray(HEADER_SIZE, HEADER_SIZE + chunk)]))).toThrow(/failed authentication/);
    const header = Buffer.from(sealed);
    header[20] ^= 1; // the salt: another object key
    expect(() => open(header)).toThrow(/chunk 0 failed authentication/);
    expect(() => open(sealed, randomBytes(32))).toThrow(/another key/);
    expect(() => open(sealed.subarray(0, 10))).toThrow(/truncated/);
  });

  it('binds an object to its place: another path, backup or kind fails authentication', () => {
    const sealed = seal(plain);
    expect(open(sealed).equals(plain)).toBe(true);
    expect(() => open(sealed, key, objectPlace('file', 'pg', '20261125T000000', 'pg_hba.conf'))).toThrow(/chunk 0 failed authentication: .*belongs to another place/);
    expect(() => open(sealed, key, objectPlace('file', 'pg', '20261126T000000', 'base/5/1259'))).toThrow(/chunk 0 failed authentication/);
    expect(() => open(sealed, key, objectPlace('wal', 'pg', '20261125T000000', 'base/5/1259'))).toThrow(/chunk 0 failed authentication/);
  });

  it('opens format 1 objects (no place) only where the reader allows them', () => {
    // A version 1 object as earlier pgharbor wrote it: header version 1, key from "pgharbor object v1", AAD the header alone.
    const salt = randomBytes(16);
    const header = Buffer.concat([Buffer.from('PGHE'), Buffer.from([1, 1, 18, 0]), createHmac('sha256', key).update('pgharbor key id').digest().subarray(0, 8), salt]);
    const cipher = createCipheriv('aes-256-gcm', Buffer.from(hkdfSync('sha256', key, salt, 'pgharbor object v1', 32)), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    cipher.setAAD(header);
    const v1 = Buffer.concat([header, cipher.update(plain.subarray(0, 1000)), cipher.final(), cipher.getAuthTag()]);
    expect(open(v1, key, place, true).equals(plain.subarray(0, 1000))).toBe(true);
    expect(() => open(v1)).toThrow(/format version 1 .* only version 2 is accepted/);
  });
});

describe('codec settings', () => {
  it('defaults to zstd level 1, inherits the server setting, checks algorithms and levels', () => {
    expect(resolveCodecSettings({}, {}, 's.repositories[0]')).toEqual({ compression: 'zstd', level: 1 });
    expect(resolveCodecSettings({}, { compression: 'lz4' }, 's.repositories[0]')).toEqual({ compression: 'lz4', level: undefined });
    expect(resolveCodecSettings({ compression: 'zstd', compression_level: 5 }, {}, 's.repositories[0]')).toEqual({ compression: 'zstd', level: 5 });
    expect(resolveCodecSettings({ compression: 'zstd', compression_level: 5 }, { compression: 'gzip' }, 's.repositories[0]')).toEqual({ compression: 'gzip', level: 6 });
    expect(() => resolveCodecSettings({}, { compression: 'brotli' }, 's.repositories[0]')).toThrow(/s\.repositories\[0\]\.compression: unknown algorithm "brotli"/);
    expect(() => resolveCodecSettings({}, { compression: 'gzip', compression_level: 12 }, 's.repositories[0]')).toThrow(/12 is not a gzip level/);
    expect(() => resolveCodecSettings({ compression: 'lz4', compression_level: 3 }, {}, 's.repositories[0]')).toThrow(/^s\.compression_level: lz4 has no compression levels/);
    expect(() => resolveCodecSettings({}, { encryption: {} }, 's.repositories[0]')).toThrow(/exactly one of passphrase or key/);
  });
});
