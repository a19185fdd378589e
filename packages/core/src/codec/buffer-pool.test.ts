import { describe, expect, it } from 'vitest';
import { POOLED_SIZE, givePooledBuffer, takePooledBuffer } from './buffer-pool.js';

describe('buffer pool', () => {
  it('hands a buffer given back (or a view of it) out again', () => {
    const first = takePooledBuffer();
    expect(first.length).toBe(POOLED_SIZE);
    givePooledBuffer(first.subarray(0, 10));
    givePooledBuffer(first); // twice: still taken back once
    const again = takePooledBuffer();
    expect(again.buffer).toBe(first.buffer);
    expect(takePooledBuffer().buffer).not.toBe(first.buffer);
  });

  it('never takes a buffer it did not allocate', () => {
    const foreign = Buffer.allocUnsafe(POOLED_SIZE);
    const small = Buffer.allocUnsafe(100); // a slice of Node's shared 8 KiB pool
    givePooledBuffer(foreign);
    givePooledBuffer(small);
    const taken = takePooledBuffer();
    expect(taken.buffer).not.toBe(foreign.buffer);
    expect(taken.buffer).not.toBe(small.buffer);
  });
});
