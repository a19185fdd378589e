/**
 * A small tar reader for the streams PostgreSQL's BASE_BACKUP sends (plain
 * ustar: one 512-byte header per entry, names < 100 bytes, sizes ≥ 8 GiB in
 * base-256). It also understands what other tar writers add, so a tar from
 * elsewhere is read correctly or refused, never misread: the ustar prefix
 * field, pax extended headers (path, linkpath, size, mtime) and GNU long
 * names/links. Header checksums are verified.
 *
 * Why not tar-stream: it wraps every entry in its own stream and every chunk
 * in several stream hops; on a 1.5 GB backup that was a large share of the
 * CPU. Here a file's data is handed on as slices of the chunks that arrive
 * (no copies), and only headers that straddle two chunks are concatenated.
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface TarHeader {
  name: string;
  type: TarEntryType;
  size: number;
  /** Permission bits (& 0o7777). */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  linkname: string;
}

export interface TarEntry {
  header: TarHeader;
  /**
   * The entry's data (files only; empty otherwise), in slices of the incoming
   * chunks. Read it before asking for the next entry, or it is skipped.
   */
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;
/** pax/GNU headers carry names, not data: refuse absurd ones instead of buffering them. */
const MAX_META_SIZE = 1024 * 1024;

export class TarFormatError extends Error {}

/** The entries of a tar stream, in order. Throws TarFormatError on anything it cannot read faithfully. */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const input = new BlockInput(source);
  let globalPax: Record<string, string> = {};
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  try {
    for (;;) {
      const block = await input.read(BLOCK);
      if (!block) throw new TarFormatError('tar stream ended without its end-of-archive marker (unexpected end of data)');
      if (isZero(block)) {
        // End of archive. Read on to the end of the stream (the second zero
        // block, record padding) so that the writer never blocks on a full pipe.
        while (await input.next()) {
          // discard
        }
        return;
      }
      verifyChecksum(block);
      const typeflag = block[156] === 0 ? '0' : String.fromCharCode(block[156]);
      const size = readNumber(block, 124, 12, 'size');
      const padded = Math.ceil(size / BLOCK) * BLOCK;

      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        if (size > MAX_META_SIZE) throw new TarFormatError(`tar ${typeflag} header of ${size} bytes is too large`);
        const data = (await input.read(padded))?.subarray(0, size);
        if (!data || data.length < size) throw new TarFormatError('tar stream ended inside an extended header (unexpected end of data)');
        if (typeflag === 'x') pax = { ...pax, ...parsePax(data) };
        else if (typeflag === 'g') globalPax = { ...globalPax, ...parsePax(data) };
        else if (typeflag === 'L') longName = cString(data);
        else longLink = cString(data);
        continue;
      }

      const attrs = { ...globalPax, ...pax };
      const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
      let name = longName ?? attrs.path ?? cString(block.subarray(0, 100));
      if (longName === undefined && attrs.path === undefined && ustar) {
        const prefix = cString(block.subarray(345, 500));
        if (prefix) name = `${prefix}/${name}`;
      }
      const linkname = longLink ?? attrs.linkpath ?? cString(block.subarray(157, 257));
      const dataSize = attrs.size !== undefined ? paxNumber(attrs.size, 'size') : size;
      const mtime = attrs.mtime !== undefined ? Math.floor(paxNumber(attrs.mtime, 'mtime')) : readNumber(block, 136, 12, 'mtime');
      const header: TarHeader = {
        name,
        type: entryType(typeflag, name),
        size: dataSize,
        mode: readNumber(block, 100, 8, 'mode') & 0o7777,
        mtime,
        linkname,
      };
      pax = {};
      longName = undefined;
      longLink = undefined;

      // Only regular files carry data in the tars we read; a hard link's or a
      // device's size field is 0 by convention, but honour it either way.
      const body = input.body(dataSize);
      yield { header, body: header.type === 'file' ? body : emptyBody() };
      await input.skipBody();
      await input.skip(Math.ceil(dataSize / BLOCK) * BLOCK - dataSize);
    }
  } finally {
    await input.close();
  }
}

function entryType(typeflag: string, name: string): TarEntryType {
  switch (typeflag) {
    case '0':
    case '7':
      // Pre-POSIX tars mark directories only by the trailing slash.
      return name.endsWith('/') && typeflag === '0' ? 'directory' : 'file';
    case '5':
      return 'directory';
    case '2':
      return 'symlink';
    default:
      return 'other'; // hard links, devices, FIFOs: PostgreSQL sends none
  }
}

async function* emptyBody(): AsyncGenerator<Buffer> {}

function isZero(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function verifyChecksum(block: Buffer): void {
  const stored = readNumber(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) throw new TarFormatError('tar header checksum mismatch: the stream is not a tar archive or is damaged');
}

/** Octal (NUL/space terminated), or base-256 when the high bit of the first byte is set (GNU, and PostgreSQL for ≥ 8 GiB). */
function readNumber(block: Buffer, offset: number, length: number, field: string): number {
  if (block[offset] & 0x80) {
    if (block[offset] === 0xff) throw new TarFormatError(`tar header ${field} is negative`);
    let value = block[offset] & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + block[offset + i];
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`tar header ${field} is too large`);
    return value;
  }
  const text = block.toString('latin1', offset, offset + length).replace(/[\0 ]+$/, '').replace(/^[ \0]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`tar header ${field} field is not a number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}

/** pax records: "<length> <key>=<value>\n", length counting the whole record. */
function parsePax(data: Buffer): Record<string, string> {
  const attrs: Record<string, string> = {};
  let at = 0;
  while (at < data.length && data[at] !== 0) {
    const space = data.indexOf(0x20, at);
    const length = space === -1 ? NaN : Number(data.toString('latin1', at, space));
    if (!Number.isInteger(length) || length <= 0 || at + length > data.length) throw new TarFormatError('malformed pax extended header');
    const record = data.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq === -1) throw new TarFormatError('malformed pax extended header record');
    attrs[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return attrs;
}

function paxNumber(text: string, field: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new TarFormatError(`pax header ${field} is not a number: ${JSON.stringify(text)}`);
  return value;
}

/** Exact reads over a stream of chunks of any size. */
class BlockInput {
  private pending: Buffer | undefined;
  private readonly iterator: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** The next `length` bytes as one buffer (a slice when they are in one chunk), or fewer/undefined at the end. */
  async read(length: number): Promise<Buffer | undefined> {
    const first = await this.next();
    if (!first) return undefined;
    if (first.length >= length) {
      if (first.length > length) this.pending = first.subarray(length);
      return first.subarray(0, length);
    }
    const parts = [first];
    let have = first.length;
    while (have < length) {
      const chunk = await this.next();
      if (!chunk) break;
      const used = Math.min(chunk.length, length - have);
      if (used < chunk.length) this.pending = chunk.subarray(used);
      parts.push(chunk.subarray(0, used));
      have += used;
    }
    return Buffer.concat(parts, have);
  }

  /** Bytes of the current body not yet handed out. */
  private bodyLeft = 0;

  /** Exactly `length` bytes, in slices of the incoming chunks. */
  body(length: number): AsyncGenerator<Buffer> {
    this.bodyLeft = length;
    const slices = async function* (input: BlockInput) {
      while (input.bodyLeft > 0) yield await input.bodySlice();
    };
    return slices(this);
  }

  /** Drop what is left of the current body (the consumer stopped early, or did not want it). */
  async skipBody(): Promise<void> {
    while (this.bodyLeft > 0) await this.bodySlice();
  }

  async skip(length: number): Promise<void> {
    if (length === 0) return;
    const skipped = await this.read(length);
    if (!skipped || skipped.length < length) throw new TarFormatError('tar stream ended inside padding (unexpected end of data)');
  }

  private async bodySlice(): Promise<Buffer> {
    const chunk = await this.next();
    if (!chunk) throw new TarFormatError('tar stream ended inside a file (unexpected end of data)');
    if (chunk.length <= this.bodyLeft) {
      this.bodyLeft -= chunk.length;
      return chunk;
    }
    this.pending = chunk.subarray(this.bodyLeft);
    const slice = chunk.subarray(0, this.bodyLeft);
    this.bodyLeft = 0;
    return slice;
  }

  async next(): Promise<Buffer | undefined> {
    if (this.pending) {
      const chunk = this.pending;
      this.pending = undefined;
      return chunk;
    }
    for (;;) {
      const { value, done } = await this.iterator.next();
      if (done) return undefined;
      if (value.length) return value;
    }
  }

  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}
