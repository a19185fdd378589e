import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pack as tarPack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { readTar, type TarHeader } from './tar-reader.js';

interface Read {
  header: TarHeader;
  content: Buffer;
}

/** Read a whole tar, handed over in chunks of `chunkSize` bytes (to cross every boundary). */
async function readAll(tar: Buffer, chunkSize = 7919, consume = true): Promise<Read[]> {
  const chunks = async function* () {
    for (let at = 0; at < tar.length; at += chunkSize) yield tar.subarray(at, at + chunkSize);
  };
  const out: Read[] = [];
  for await (const { header, body } of readTar(chunks())) {
    const parts: Buffer[] = [];
    if (consume) for await (const part of body) parts.push(part);
    out.push({ header, content: Buffer.concat(parts) });
  }
  return out;
}

async function packed(entries: { name: string; type?: 'file' | 'directory' | 'symlink'; content?: Buffer; linkname?: string; mode?: number; mtime?: Date }[], pax?: Record<string, string>): Promise<Buffer> {
  const pack = tarPack();
  const done = (async () => {
    const parts: Buffer[] = [];
    for await (const part of pack) parts.push(part as Buffer);
    return Buffer.concat(parts);
  })();
  for (const e of entries) {
    pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode ?? 0o600, mtime: e.mtime ?? new Date(1_700_000_000_000), pax }, e.content);
  }
  pack.finalize();
  return done;
}

describe('readTar', () => {
  it('reads files, directories and symlinks with their data, across any chunking', async () => {
    const big = Buffer.alloc(300_001, 7);
    big.write('the end', big.length - 7);
    const tar = await packed([
      { name: 'base/', type: 'directory', mode: 0o700 },
      { name: 'base/1/1259', content: big, mode: 0o640 },
      { name: 'empty', content: Buffer.alloc(0) },
      { name: 'pg_tblspc/16385', type: 'symlink', linkname: '/srv/space' },
      { name: 'PG_VERSION', content: Buffer.from('15\n') },
    ]);
    for (const chunkSize of [1, 511, 512, 513, 7919, 1 << 20]) {
      const entries = await readAll(tar, chunkSize);
      expect(entries.map((e) => [e.header.name, e.header.type, e.header.size, e.header.mode])).toEqual([
        ['base/', 'directory', 0, 0o700],
        ['base/1/1259', 'file', big.length, 0o640],
        ['empty', 'file', 0, 0o600],
        ['pg_tblspc/16385', 'symlink', 0, 0o600],
        ['PG_VERSION', 'file', 3, 0o600],
      ]);
      expect(entries[1].content.equals(big)).toBe(true);
      expect(entries[3].header.linkname).toBe('/srv/space');
      expect(entries[4].content.toString()).toBe('15\n');
      expect(entries[4].header.mtime).toBe(1_700_000_000);
    }
  });

  it('skips the data of entries whose body is not read', async () => {
    const tar = await packed([
      { name: 'a', content: Buffer.alloc(1000, 1) },
      { name: 'b', content: Buffer.from('bee') },
    ]);
    const entries = await readAll(tar, 100, false);
    expect(entries.map((e) => e.header.name)).toEqual(['a', 'b']);
  });

  it('reads long names and link targets from pax headers', async () => {
    const long = `base/${'d'.repeat(120)}/${'f'.repeat(150)}`;
    const target = `/srv/${'t'.repeat(200)}`;
    const tar = await packed([
      { name: long, content: Buffer.from('x') },
      { name: 'link', type: 'symlink', linkname: target },
    ]);
    const entries = await readAll(tar);
    expect(entries[0].header.name).toBe(long);
    expect(entries[0].content.toString()).toBe('x');
    expect(entries[1].header.linkname).toBe(target);
  });

  it('reads what GNU tar writes (long names, the ustar prefix field)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgharbor-tar-reader-'));
    try {
      const deep = path.join('data', 'x'.repeat(90), 'y'.repeat(90));
      mkdirSync(path.join(dir, deep), { recursive: true });
      writeFileSync(path.join(dir, deep, 'z'.repeat(110)), 'long');
      writeFileSync(path.join(dir, 'data', 'short'), 'short');
      symlinkSync('/'.padEnd(150, 'l'), path.join(dir, 'data', 'ln'));
      utimesSync(path.join(dir, 'data', 'short'), 1_600_000_000, 1_600_000_000);
      const tarOf = (format: string, top: string) => execFileSync('tar', ['-c', `--format=${format}`, '-C', dir, '--sort=name', top], { maxBuffer: 1 << 26 });
      // ustar holds a long path as prefix + name (and nothing longer than 255 bytes).
      mkdirSync(path.join(dir, 'u', 'p'.repeat(90)), { recursive: true });
      writeFileSync(path.join(dir, 'u', 'p'.repeat(90), 'n'.repeat(60)), 'split');
      const ustar = await readAll(tarOf('ustar', 'u'), 333);
      expect(ustar.map((e) => e.header.name)).toContain(`u/${'p'.repeat(90)}/${'n'.repeat(60)}`);
      expect(ustar.find((e) => e.header.name.endsWith('n'.repeat(60)))?.content.toString()).toBe('split');
      for (const format of ['gnu', 'posix']) {
        const tar = tarOf(format, 'data');
        const entries = await readAll(tar, 333);
        const byName = new Map(entries.map((e) => [e.header.name.replace(/\/$/, ''), e]));
        expect(byName.get(`${deep}/${'z'.repeat(110)}`)?.content.toString(), format).toBe('long');
        expect(byName.get('data/short')?.content.toString(), format).toBe('short');
        expect(byName.get('data/short')?.header.mtime, format).toBe(1_600_000_000);
        expect(byName.get('data/ln')?.header.linkname, format).toBe('/'.padEnd(150, 'l'));
        expect(byName.get(deep)?.header.type, format).toBe('directory');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads sizes written in base-256 (PostgreSQL does so from 8 GiB on)', async () => {
    const tar = await packed([{ name: 'f', content: Buffer.from('abc') }]);
    const header = Buffer.from(tar.subarray(0, 512));
    header.fill(0, 124, 136);
    header[124] = 0x80;
    header.writeUIntBE(3, 130, 6);
    writeChecksum(header);
    const entries = await readAll(Buffer.concat([header, tar.subarray(512)]));
    expect(entries[0].header.size).toBe(3);
    expect(entries[0].content.toString()).toBe('abc');
  });

  it('refuses a damaged header and a truncated stream', async () => {
    const tar = await packed([{ name: 'f', content: Buffer.alloc(5000, 1) }]);
    const damaged = Buffer.from(tar);
    damaged[10] ^= 1;
    await expect(readAll(damaged)).rejects.toThrow(/checksum/);
    await expect(readAll(tar.subarray(0, 512 + 4000))).rejects.toThrow(/unexpected end of data/);
    await expect(readAll(tar.subarray(0, 512 + 5120))).rejects.toThrow(/unexpected end of data/);
    await expect(readAll(Buffer.from('not a tar archive at all'.repeat(40)))).rejects.toThrow(/checksum|not a number/);
  });
});

function writeChecksum(header: Buffer): void {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}
