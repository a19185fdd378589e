import { describe, expect, it } from 'vitest';
import { ChunkReader } from './chunk-reader.js';

async function* chunks(...parts: string[]) {
  for (const part of parts) yield Buffer.from(part);
}

async function collect(source: AsyncIterable<Buffer>): Promise<string> {
  let out = '';
  for await (const chunk of source) out += chunk.toString();
  return out;
}

describe('ChunkReader', () => {
  it('splits a stream into exact lengths whatever the chunk boundaries', async () => {
    const reader = new ChunkReader(chunks('ab', 'cdefg', 'h', 'ijkl'));
    expect(await collect(reader.take(3))).toBe('abc');
    await reader.skip(2);
    expect(await collect(reader.take(0))).toBe('');
    expect(await collect(reader.take(6))).toBe('fghijk');
    expect(await collect(reader.take(1))).toBe('l');
  });

  it('reports a stream that ends too early as truncated', async () => {
    const reader = new ChunkReader(chunks('abc'));
    await expect(collect(reader.take(5))).rejects.toThrow(/truncated/);
  });
});
