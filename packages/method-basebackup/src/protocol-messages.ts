/**
 * Backend messages of the PostgreSQL wire protocol (version 3), read from a
 * byte stream with every size checked before anything is buffered: the
 * server's stream is another party's output (DESIGN.md, "Trust
 * boundaries"). Only the messages a walsender sends in answer to
 * BASE_BACKUP are understood; see protocol.sgml, "Message Formats".
 */

export interface BackendMessage {
  /** The type byte, as a character ('d' CopyData, 'E' ErrorResponse, …). */
  type: string;
  body: Buffer;
}

/**
 * The largest message accepted. A walsender sends CopyData of its sink
 * buffer (32 KiB, up to ~256 KiB behind a compressing sink) and small
 * result sets: 4 MiB leaves room for any server build while a forged
 * length can cost no more than that.
 */
export const MAX_MESSAGE = 4 * 1024 * 1024;

export class ProtocolError extends Error {}

/** The connection ended before the exchange did (a server stopped, a WAL sender terminated, a network failure). */
export class ConnectionLostError extends Error {}

/**
 * Whole messages from `source`, in order. A message is yielded once
 * complete; the data of one read is sliced (not copied) when a message lies
 * within it. The consumer's pace sets the read pace (pull-based), so a
 * slow consumer keeps the socket paused and memory stays bounded.
 */
export async function* readMessages(source: AsyncIterable<Buffer>): AsyncGenerator<BackendMessage> {
  // The start of a message that straddles reads (its length checked as soon as its header is in).
  let parts: Buffer[] = [];
  let have = 0;
  let need = 0; // its whole size, once known
  for await (const read of source) {
    let chunk = read;
    if (have > 0) {
      if (need === 0) {
        if (have + read.length < 5) {
          parts.push(read);
          have += read.length;
          continue;
        }
        need = messageSize(Buffer.concat([...parts, read.subarray(0, 5 - have)]));
      }
      if (have + read.length < need) {
        parts.push(read);
        have += read.length;
        continue;
      }
      // Copy only this message's bytes; the rest of the read is sliced below.
      const take = need - have;
      const whole = Buffer.concat([...parts, read.subarray(0, take)], need);
      parts = [];
      have = 0;
      need = 0;
      yield { type: String.fromCharCode(whole[0]), body: whole.subarray(5) };
      chunk = read.subarray(take);
    }
    let at = 0;
    while (chunk.length - at >= 5) {
      const size = messageSize(chunk.subarray(at, at + 5));
      if (chunk.length - at < size) break;
      yield { type: String.fromCharCode(chunk[at]), body: chunk.subarray(at + 5, at + size) };
      at += size;
    }
    if (at < chunk.length) {
      parts = [chunk.subarray(at)];
      have = chunk.length - at;
      need = have >= 5 ? messageSize(chunk.subarray(at, at + 5)) : 0;
    }
  }
  if (have > 0) throw new ConnectionLostError('the server closed the connection in the middle of a message');
}

/** Type byte + length field + body, checked against MAX_MESSAGE before anything waits for it. */
function messageSize(header: Buffer): number {
  const length = header.readInt32BE(1);
  checkLength(header[0], length);
  return 1 + length;
}

function checkLength(typeByte: number, length: number): void {
  if (length < 4) throw new ProtocolError(`a message of type ${describeType(typeByte)} declares an impossible length (${length})`);
  if (length > MAX_MESSAGE) {
    throw new ProtocolError(`a message of type ${describeType(typeByte)} declares ${length} bytes, more than the ${MAX_MESSAGE} pgharbor accepts`);
  }
}

function describeType(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}'` : `0x${byte.toString(16).padStart(2, '0')}`;
}

/** A reader over one message body that refuses to read past its end. */
export class BodyReader {
  private at = 0;
  constructor(
    private readonly body: Buffer,
    private readonly what: string,
  ) {}

  byte(): number {
    this.need(1);
    return this.body[this.at++];
  }

  int16(): number {
    this.need(2);
    const value = this.body.readInt16BE(this.at);
    this.at += 2;
    return value;
  }

  int32(): number {
    this.need(4);
    const value = this.body.readInt32BE(this.at);
    this.at += 4;
    return value;
  }

  int64(): bigint {
    this.need(8);
    const value = this.body.readBigInt64BE(this.at);
    this.at += 8;
    return value;
  }

  /** A NUL-terminated string of at most `max` bytes. */
  cstring(max: number): string {
    const end = this.body.indexOf(0, this.at);
    if (end < 0) throw new ProtocolError(`${this.what}: a string has no terminating NUL`);
    if (end - this.at > max) throw new ProtocolError(`${this.what}: a string of ${end - this.at} bytes is longer than ${max}`);
    const value = this.body.toString('utf8', this.at, end);
    this.at = end + 1;
    return value;
  }

  bytes(length: number): Buffer {
    this.need(length);
    const value = this.body.subarray(this.at, this.at + length);
    this.at += length;
    return value;
  }

  rest(): Buffer {
    const value = this.body.subarray(this.at);
    this.at = this.body.length;
    return value;
  }

  end(): void {
    if (this.at !== this.body.length) throw new ProtocolError(`${this.what}: ${this.body.length - this.at} unexpected trailing bytes`);
  }

  private need(bytes: number): void {
    if (this.at + bytes > this.body.length) throw new ProtocolError(`${this.what}: the message is shorter than its fields`);
  }
}

/** ErrorResponse / NoticeResponse fields: severity (V or S), code (C), message (M), detail (D), hint (H). */
export function parseNotice(body: Buffer): Record<string, string> {
  const reader = new BodyReader(body, 'ErrorResponse');
  const fields: Record<string, string> = {};
  for (let count = 0; count < 64; count++) {
    const code = reader.byte();
    if (code === 0) return fields;
    fields[String.fromCharCode(code)] = reader.cstring(16 * 1024);
  }
  throw new ProtocolError('ErrorResponse: too many fields');
}

/** A DataRow's values as text (null for SQL NULL), at most `maxColumns` of them. */
export function parseDataRow(body: Buffer, maxColumns: number): (string | null)[] {
  const reader = new BodyReader(body, 'DataRow');
  const count = reader.int16();
  if (count < 0 || count > maxColumns) throw new ProtocolError(`DataRow: ${count} columns where at most ${maxColumns} are expected`);
  const values: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const length = reader.int32();
    if (length === -1) values.push(null);
    else if (length < 0) throw new ProtocolError(`DataRow: a column declares length ${length}`);
    else values.push(reader.bytes(length).toString('utf8'));
  }
  reader.end();
  return values;
}

/** The number of columns a RowDescription announces. */
export function rowDescriptionColumns(body: Buffer): number {
  return new BodyReader(body, 'RowDescription').int16();
}

/** A simple Query message (frontend 'Q'). */
export function queryMessage(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const message = Buffer.alloc(1 + 4 + bytes.length + 1);
  message[0] = 0x51; // 'Q'
  message.writeInt32BE(4 + bytes.length + 1, 1);
  bytes.copy(message, 5);
  return message;
}

/** Terminate (frontend 'X'). */
export const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

/** CopyData (frontend 'd') carrying `bytes`. */
export function copyDataMessage(bytes: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0x64; // 'd'
  head.writeInt32BE(4 + bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

/** CopyDone (frontend 'c'). */
export const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]);
