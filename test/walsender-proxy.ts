import net from 'node:net';
import path from 'node:path';

/**
 * A TCP proxy on loopback in front of a real cluster's socket, for the
 * streaming connection only: startup, authentication and every other
 * message pass through unchanged; a BASE_BACKUP command gets what the
 * scenario says instead: a crafted answer (a hostile server), or the real
 * server's answer cut after some bytes (a connection dropped mid-backup).
 * The SQL connection (conninfo) goes to the real server directly.
 */
export type ProxyScenario =
  | { kind: 'answer'; answer: (command: string) => Buffer }
  | { kind: 'cut'; afterBytes: number };

export interface WalsenderProxy {
  port: number;
  /** BASE_BACKUP commands seen, in order. */
  commands: string[];
  close(): Promise<void>;
}

export async function startWalsenderProxy(cluster: { socketDir: string; port: number }, scenario: ProxyScenario): Promise<WalsenderProxy> {
  const commands: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(path.join(cluster.socketDir, `.s.PGSQL.${cluster.port}`));
    sockets.add(client).add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    let sentToClient = 0;
    let cutting = false;
    upstream.on('data', (chunk: Buffer) => {
      if (!cutting) return void client.write(chunk);
      const room = scenario.kind === 'cut' ? scenario.afterBytes - sentToClient : 0;
      if (chunk.length < room) {
        sentToClient += chunk.length;
        client.write(chunk);
        return;
      }
      client.write(chunk.subarray(0, Math.max(0, room)), closeBoth);
    });

    let pending = Buffer.alloc(0);
    let started = false;
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (!started) {
          if (pending.length < 4) return;
          const length = pending.readInt32BE(0);
          if (pending.length < length) return;
          upstream.write(pending.subarray(0, length));
          pending = pending.subarray(length);
          started = true;
          continue;
        }
        if (pending.length < 5) return;
        const length = pending.readInt32BE(1);
        if (pending.length < 1 + length) return;
        const message = pending.subarray(0, 1 + length);
        pending = pending.subarray(1 + length);
        const text = message[0] === 0x51 ? message.toString('utf8', 5, message.length - 1) : '';
        if (!text.startsWith('BASE_BACKUP')) {
          upstream.write(message);
          continue;
        }
        commands.push(text);
        if (scenario.kind === 'cut') {
          cutting = true;
          upstream.write(message);
        } else {
          upstream.destroy();
          client.end(scenario.answer(text));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    commands,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Backend messages, to build a scenario's answer. */
export const wire = {
  message(type: string, body: Buffer): Buffer {
    const header = Buffer.alloc(5);
    header[0] = type.charCodeAt(0);
    header.writeInt32BE(4 + body.length, 1);
    return Buffer.concat([header, body]);
  },
  cstring: (text: string) => Buffer.concat([Buffer.from(text), Buffer.alloc(1)]),
  resultSet(columns: string[], rows: (string | null)[][]): Buffer {
    const description = Buffer.concat([
      int16(columns.length),
      ...columns.map((name) => Buffer.concat([wire.cstring(name), Buffer.alloc(18)])),
    ]);
    const dataRows = rows.map((row) =>
      wire.message('D', Buffer.concat([int16(row.length), ...row.map((v) => (v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)])))])),
    );
    return Buffer.concat([wire.message('T', description), ...dataRows, wire.message('C', wire.cstring('SELECT'))]);
  },
  copyOut: () => wire.message('H', Buffer.from([0, 0, 0])),
  copyData: (kind: string, payload: Buffer) => wire.message('d', Buffer.concat([Buffer.from(kind), payload])),
  copyDone: () => wire.message('c', Buffer.alloc(0)),
  error: (message: string, code = 'XX000') =>
    wire.message('E', Buffer.concat([Buffer.from('SERROR\0VERROR\0'), Buffer.from(`C${code}\0M${message}\0`), Buffer.alloc(1)])),
  ready: () => wire.message('Z', Buffer.from('I')),
  complete: (tag: string) => wire.message('C', wire.cstring(tag)),
};

function int16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(value);
  return b;
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(value);
  return b;
}

/** The start of a PostgreSQL 15+ answer: start position, a tablespace list with the main directory only, CopyOut, 'n' base.tar. */
export function answerPrefix(options: { archiveName?: string; tablespaces?: (string | null)[][] } = {}): Buffer {
  return Buffer.concat([
    wire.resultSet(['recptr', 'tli'], [['0/2000028', '1']]),
    wire.resultSet(['spcoid', 'spclocation', 'size'], options.tablespaces ?? [[null, null, '1']]),
    wire.copyOut(),
    wire.copyData('n', Buffer.concat([wire.cstring(options.archiveName ?? 'base.tar'), wire.cstring('')])),
  ]);
}

/** After the archives: manifest, CopyDone, end position, CommandComplete, ReadyForQuery. */
export function answerSuffix(): Buffer {
  return Buffer.concat([
    wire.copyData('m', Buffer.alloc(0)),
    wire.copyData('d', Buffer.from('{"PostgreSQL-Backup-Manifest-Version": 1}')),
    wire.copyDone(),
    wire.resultSet(['recptr', 'tli'], [['0/2000100', '1']]),
    wire.complete('BASE_BACKUP'),
    wire.ready(),
  ]);
}
