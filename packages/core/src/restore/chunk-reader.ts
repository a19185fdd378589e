/**
 * Reads exact byte counts from a stream of chunks of any size: a bundle is
 * files back to back, and each file must get exactly its own bytes.
 */
export class ChunkReader {
  private pending: Buffer | undefined;
  private readonly iterator: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Yield the next `length` bytes, in the chunks they arrive in. */
  async *take(length: number): AsyncGenerator<Buffer> {
    let left = length;
    while (left > 0) {
      const chunk = await this.next();
      if (chunk.length <= left) {
        left -= chunk.length;
        yield chunk;
      } else {
        this.pending = chunk.subarray(left);
        yield chunk.subarray(0, left);
        left = 0;
      }
    }
  }

  async skip(length: number): Promise<void> {
    for await (const _ of this.take(length)) {
      // discard
    }
  }

  private async next(): Promise<Buffer> {
    if (this.pending) {
      const chunk = this.pending;
      this.pending = undefined;
      return chunk;
    }
    const { value, done } = await this.iterator.next();
    if (done) throw new Error('stored bundle ended early: it is truncated');
    return value;
  }

  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}
