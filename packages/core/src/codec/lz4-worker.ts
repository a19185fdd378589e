/**
 * The body of an lz4 compression worker (see lz4-workers.ts): compresses
 * the block in one of the shared slots it was given into an LZ4 frame in
 * the same slot's output: nothing allocated, nothing copied per block.
 */
import { parentPort } from 'node:worker_threads';
import { lz4FrameBound, writeLz4Frame } from './lz4-frame.js';

/** Sent once per slot: structured-cloning a SharedArrayBuffer costs ~0.3 ms, far more than a job's message. */
export interface Lz4Slot {
  slot: number;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
}

export interface Lz4Job {
  id: number;
  slot: number;
  length: number;
}

export type Lz4JobDone = { id: number; length: number } | { id: number; error: string };

const slots: { input: Uint8Array; output: Uint8Array }[] = [];

parentPort?.on('message', (message: Lz4Slot | Lz4Job) => {
  if ('input' in message) {
    slots[message.slot] = { input: new Uint8Array(message.input), output: new Uint8Array(message.output) };
    return;
  }
  const { id, slot, length } = message;
  let done: Lz4JobDone;
  try {
    const { input, output } = slots[slot];
    if (lz4FrameBound(length) > output.length) throw new Error(`a block of ${length} bytes does not fit its ${output.length}-byte slot`);
    done = { id, length: writeLz4Frame(input.subarray(0, length), output) };
  } catch (error) {
    done = { id, error: error instanceof Error ? error.message : String(error) };
  }
  parentPort!.postMessage(done);
});
