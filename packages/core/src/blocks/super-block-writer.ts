import { loadCompressor, type BlockCompressor } from '../codec/compressors.js';
import { Encoder } from '../codec/stream-codec.js';
import type { BundleSpan } from '../repository/bundle-writer.js';
import type { Repository } from '../repository/repository.js';
import { SUPER_BLOCK_SIZE, type SuperBlock } from './block-map.js';

/** Super blocks compressing at once (on libuv's thread pool or lz4's workers), as the stream codec keeps frames in flight. */
const IN_FLIGHT = 3;

interface Pending {
  plain: Buffer;
  length: number;
  compressed?: Promise<Buffer>;
  done: (stored: Omit<SuperBlock, 'ref'>) => void;
}

/**
 * Writes one file's super blocks into its bundle span, in order, while
 * the next ones compress: each super block is compressed as one frame
 * (in parallel, up to IN_FLIGHT), then, at its turn, sealed for its place
 * (encrypted repositories bind it to its bundle and offset, known only
 * then) and written. The bytes are exactly what the repository codec's
 * encoder makes of 1 MiB of plaintext: one frame, one encrypted object.
 */
export class SuperBlockWriter {
  private readonly queue: Pending[] = [];
  private readonly free: Buffer[] = [];
  private compressor?: Promise<BlockCompressor | undefined>;

  constructor(
    private readonly repository: Repository,
    private readonly span: BundleSpan,
    /** Where a super block at `bundle`/`offset` belongs (block-place.ts). */
    private readonly placeOf: (bundle: number, offset: number) => Buffer,
  ) {}

  /** A 1 MiB buffer to fill with the next super block's blocks (handed back with `add`). */
  buffer(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(SUPER_BLOCK_SIZE);
  }

  /** Queue `length` bytes of `plain` (from `buffer()`); `done` hears where they were stored. */
  async add(plain: Buffer, length: number, done: Pending['done']): Promise<void> {
    const codec = this.repository.codec;
    this.compressor ??= codec.compression === 'none' ? Promise.resolve(undefined) : loadCompressor(codec.compression);
    const compressor = await this.compressor;
    const item: Pending = { plain, length, done };
    if (compressor) {
      item.compressed = compressor.compress(plain.subarray(0, length), codec.settings.level);
      item.compressed.catch(() => {}); // awaited in order; never an unhandled rejection meanwhile
    }
    this.queue.push(item);
    if (this.queue.length >= IN_FLIGHT) await this.writeOldest();
  }

  /**
   * Stored as they are (no compression, no encryption): the blocks go
   * straight into the bundle, in order, without the copy into a super block
   * buffer and the copy the stream would keep (two 1 MiB copies per super
   * block, and most of a full backup's garbage collection). `blocks` must
   * not be reused by the caller: the bundle's stream keeps them until written.
   */
  async addPlain(blocks: Buffer[], done: Pending['done']): Promise<void> {
    while (this.queue.length) await this.writeOldest();
    const at = this.span.position();
    let length = 0;
    for (const block of blocks) {
      length += block.length;
      await this.span.write(block);
    }
    done({ bundle: at.bundle, offset: at.offset, storedSize: length, plainSize: length, compression: 'none', encryption: 'none' });
  }

  /** Write every queued super block. */
  async finish(): Promise<void> {
    while (this.queue.length) await this.writeOldest();
  }

  private async writeOldest(): Promise<void> {
    const item = this.queue.shift()!;
    const codec = this.repository.codec;
    // The stream keeps what it is given: never the reused plain buffer itself.
    const bytes = item.compressed ? await item.compressed : Buffer.from(item.plain.subarray(0, item.length));
    this.free.push(item.plain);
    const at = this.span.position();
    let storedSize = 0;
    const emit = async (out: Buffer) => {
      storedSize += out.length;
      await this.span.write(out);
    };
    if (codec.isEncrypted) {
      const sealer = new Encoder(undefined, undefined, await codec.seal(this.placeOf(at.bundle, at.offset)), emit);
      await sealer.push(bytes);
      await sealer.end();
    } else await emit(bytes);
    item.done({ bundle: at.bundle, offset: at.offset, storedSize, plainSize: item.length, compression: codec.compression, encryption: codec.encryption });
  }
}
