import { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { close, read, write } from './sftp-ops.js';

/**
 * SFTP is request/response: one request at a time would wait a round trip
 * per 32-255 KiB. Both directions keep several requests in flight instead,
 * with bounded memory: at most WINDOW bytes written but not acknowledged,
 * at most READ_AHEAD requests read ahead of the consumer.
 */
/** OpenSSH's largest read/write payload (limits@openssh.com); ssh2 splits bigger requests. */
const PIECE = 255 * 1024;
const WRITE_WINDOW = 4 * 1024 * 1024;
const READ_AHEAD = 8;

/** Errors that came from the caller's body stream, not from the server: reported as they are. */
const bodyFailures = new WeakSet<object>();
export function isBodyFailure(error: unknown): boolean {
  return typeof error === 'object' && error !== null && bodyFailures.has(error);
}

/** Write a whole body to an open handle from offset 0; resolves with the bytes written once all are acknowledged. */
export async function writeBody(sftp: SFTPWrapper, handle: Buffer, body: Readable | Uint8Array | string): Promise<number> {
  const pending = new Set<Promise<void>>();
  let inFlight = 0;
  let failure: unknown;
  let position = 0;
  const send = (piece: Buffer) => {
    const request = write(sftp, handle, piece, position)
      .catch((error: unknown) => void (failure ??= error))
      .finally(() => {
        inFlight -= piece.length;
        pending.delete(request);
      });
    pending.add(request);
    inFlight += piece.length;
    position += piece.length;
  };
  for await (const chunk of chunksOf(body, (error) => typeof error === 'object' && error !== null && bodyFailures.add(error))) {
    for (let offset = 0; offset < chunk.length; offset += PIECE) {
      send(chunk.subarray(offset, offset + PIECE));
      // Backpressure: the body is read no faster than the server acknowledges.
      while (inFlight > WRITE_WINDOW && failure === undefined) await Promise.race(pending);
      if (failure !== undefined) break;
    }
    if (failure !== undefined) break;
  }
  // After a failure, requests still pending may never be answered (the connection is gone): don't wait for them.
  if (failure === undefined) await Promise.all(pending);
  if (failure !== undefined) throw failure;
  return position;
}

/**
 * Stream bytes [start, end) of an open handle, closing it when done,
 * failed or destroyed. Reads run ahead of the consumer by a few requests.
 */
export function readRange(sftp: SFTPWrapper, handle: Buffer, start: number, end: number): Readable {
  return Readable.from(readAhead(sftp, handle, start, end), { objectMode: false });
}

async function* readAhead(sftp: SFTPWrapper, handle: Buffer, start: number, end: number): AsyncGenerator<Buffer> {
  const queue: { position: number; length: number; data: Promise<Buffer> }[] = [];
  let next = start;
  const issue = () => {
    const length = Math.min(PIECE, end - next);
    if (length <= 0) return;
    const data = read(sftp, handle, next, length);
    data.catch(() => undefined); // awaited below, unless the consumer stops first
    queue.push({ position: next, length, data });
    next += length;
  };
  try {
    for (let i = 0; i < READ_AHEAD; i++) issue();
    while (queue.length > 0) {
      const request = queue.shift()!;
      let data = await request.data;
      // A short read (the server may send less than asked): fetch the rest before moving on.
      while (data.length < request.length) {
        const rest = await read(sftp, handle, request.position + data.length, request.length - data.length);
        if (rest.length === 0) throw new Error(`object shrank while being read (expected ${end - start} bytes)`);
        data = Buffer.concat([data, rest]);
      }
      issue();
      yield data;
    }
  } finally {
    await close(sftp, handle).catch(() => undefined);
  }
}

async function* chunksOf(body: Readable | Uint8Array | string, onFailure: (error: unknown) => void): AsyncGenerator<Buffer> {
  if (typeof body === 'string') {
    yield Buffer.from(body, 'utf8');
  } else if (body instanceof Uint8Array) {
    yield Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  } else {
    try {
      for await (const chunk of body) {
        yield typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from((chunk as Uint8Array).buffer, (chunk as Uint8Array).byteOffset, (chunk as Uint8Array).byteLength);
      }
    } catch (error) {
      onFailure(error);
      throw error;
    }
  }
}
