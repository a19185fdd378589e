import type { Socket } from 'node:net';
import type pg from 'pg';
import { COPY_DONE, copyDataMessage, parseNotice, ProtocolError, queryMessage, readMessages, TERMINATE, type BackendMessage, ConnectionLostError } from './protocol-messages.js';

/**
 * A physical replication connection driven message by message.
 *
 * Why node-postgres for the start and our own reader after it: the start
 * (sslmode's attempts, TLS, SCRAM, passfile, service file, error hints) is
 * what every other pgharbor connection does, through ServerHandle's
 * connectStreaming and connectPostgres; doing it again would be a second
 * libpq emulation to keep in step. What follows BASE_BACKUP is where
 * node-postgres does not fit: it knows one CopyOut per query (13/14 send
 * one per tablespace between result sets), it pushes messages as fast as
 * they arrive (no backpressure: a slow repository would buffer the whole
 * backup), and pg-protocol's parser buffers a message of whatever length
 * the server declares. So once the connection is ready for a query, its
 * socket is taken over: pg's listener is removed, the socket paused, and
 * protocol-messages.ts reads it pull-based, with bounded messages.
 *
 * Tried and dropped (bench, scale 100, same machine): a read-ahead queue of
 * up to 8 MiB in front of the parser, and gathering CopyData into 1 MiB
 * buffers for the tar reader. Both doubled the CPU time: buffers that live
 * longer get promoted, and fresh 1 MiB buffers are external memory that
 * sets off full collections (GC went from 0.3 to 3-5 s per 1.5 GB).
 */
export class ReplicationSession {
  private readonly socket: Socket;
  private readonly queue: MessageQueue;
  private closed = false;
  /** Bytes read from the server so far (the whole backup, what crossed the network). */
  bytesReceived = 0;

  constructor(client: pg.Client, private readonly onNotice: (text: string) => void) {
    const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
    // The server is idle (ReadyForQuery seen), so nothing is in flight while pg's reader is swapped for ours.
    socket.removeAllListeners('data');
    socket.pause();
    this.socket = socket;
    this.queue = new MessageQueue(readMessages(this.counted(socket as AsyncIterable<Buffer>)), onNotice);
  }

  private async *counted(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      this.bytesReceived += chunk.length;
      yield chunk;
    }
  }

  /** Send a simple query (a replication command). */
  send(command: string): void {
    this.socket.write(queryMessage(command));
  }

  /**
   * UPLOAD_MANIFEST (PostgreSQL 17+): the server answers CopyInResponse,
   * takes the manifest as CopyData, and ends with CommandComplete and
   * ReadyForQuery once it has parsed it; its refusal is a ServerError.
   */
  async uploadManifest(content: Buffer): Promise<void> {
    this.send('UPLOAD_MANIFEST');
    const started = await this.queue.next('CopyInResponse to UPLOAD_MANIFEST');
    if (started.type !== 'G') throw new ProtocolError(`the server answered UPLOAD_MANIFEST with message '${started.type}', not CopyInResponse`);
    for (let at = 0; at < content.length; at += 64 * 1024) {
      if (!this.socket.write(copyDataMessage(content.subarray(at, at + 64 * 1024)))) await new Promise((resolve) => this.socket.once('drain', resolve));
    }
    this.socket.write(COPY_DONE);
    for (;;) {
      const message = await this.queue.next('the end of UPLOAD_MANIFEST');
      if (message.type === 'Z') return;
      if (message.type !== 'C') throw new ProtocolError(`the server answered UPLOAD_MANIFEST's data with message '${message.type}'`);
    }
  }

  get messages(): MessageQueue {
    return this.queue;
  }

  /** Stop everything now: the reader fails with `reason`. */
  abort(reason: Error): void {
    this.closed = true;
    this.socket.destroy(reason);
  }

  /**
   * End the session: Terminate, then close. Closing the session ends the
   * walsender (and a backup it runs) on the server.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.socket.writable) this.socket.end(TERMINATE);
    const timer = setTimeout(() => this.socket.destroy(), 2_000);
    timer.unref();
    this.socket.once('close', () => clearTimeout(timer));
  }
}

/** An error the server sent (ErrorResponse). */
export class ServerError extends Error {
  constructor(readonly fields: Record<string, string>) {
    super(`${fields.M ?? 'error without a message'}${fields.C ? ` (SQLSTATE ${fields.C})` : ''}`);
  }
}

/**
 * Backend messages with one message of look-back (`putBack`), notices
 * passed on, ParameterStatus dropped, and ErrorResponse thrown.
 */
export class MessageQueue {
  private held?: BackendMessage;

  constructor(
    private readonly source: AsyncGenerator<BackendMessage>,
    private readonly onNotice: (text: string) => void,
  ) {}

  async next(expecting: string): Promise<BackendMessage> {
    if (this.held) {
      const held = this.held;
      this.held = undefined;
      return held;
    }
    for (;;) {
      const { value, done } = await this.source.next();
      if (done) throw new ConnectionLostError(`the server closed the connection while pgharbor expected ${expecting}`);
      if (value.type === 'E') throw new ServerError(parseNotice(value.body));
      if (value.type === 'N') {
        const notice = parseNotice(value.body);
        this.onNotice(`${notice.V ?? notice.S ?? 'NOTICE'}: ${notice.M ?? ''}`);
        continue;
      }
      if (value.type === 'S') continue; // ParameterStatus: nothing here depends on a setting changing
      return value;
    }
  }

  putBack(message: BackendMessage): void {
    this.held = message;
  }
}
