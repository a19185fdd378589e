import { Readable } from 'node:stream';
import { parseLsn } from '@pgharbor/core';
import { BodyReader, parseDataRow, ProtocolError, rowDescriptionColumns, type BackendMessage } from './protocol-messages.js';
import type { MessageQueue } from './replication-session.js';

/**
 * What a walsender sends in answer to BASE_BACKUP, read in order and
 * checked at each step (protocol.sgml; src/backend/backup/basebackup_copy.c
 * for 15+, src/backend/replication/basebackup.c of REL_14_STABLE for 13/14):
 *
 *   start position   one row (recptr text, tli int8)
 *   tablespaces      one row per tablespace (spcoid, spclocation, size);
 *                    the main data directory has a NULL oid and location
 *   15+: one CopyOut whose CopyData start with a type byte:
 *                    'n' new archive (name, tablespace path), 'd' data of
 *                    the current archive or manifest, 'p' progress (int8),
 *                    'm' the manifest follows
 *   13/14: one CopyOut per tablespace in the list's order (a bare tar
 *                    without its end-of-archive blocks), then one for the
 *                    manifest
 *   end position     one row (recptr, tli)
 *
 * Archives are handed to `onArchive` as streams that read the connection
 * as they are consumed: nothing is staged, and a slow consumer leaves the
 * socket paused.
 */
export interface Tablespace {
  oid: number;
  location: string;
}

export interface ArchiveInfo {
  /** The archive's name as the server gave it (15+: "base.tar", "16385.tar.lz4"; 13/14: made up the same way). */
  name: string;
  /** undefined: the main data directory. */
  tablespace?: Tablespace;
}

export interface BaseBackupHandlers {
  /** Consume the archive's (still compressed, if asked so) bytes. Resolve once they are all read. */
  onArchive(info: ArchiveInfo, data: Readable): Promise<void>;
  onManifest(content: Buffer): Promise<void>;
  onProgress?(bytes: number): void;
}

export interface BaseBackupPositions {
  startLsn: string;
  startTimeline: number;
  endLsn: string;
  endTimeline: number;
  tablespaces: Tablespace[];
}

/** Bounds on what the server's lists may hold (a real cluster is far below). */
const MAX_TABLESPACES = 10_000;
const MAX_PATH = 1024;
/** PostgreSQL's backup_manifest is ~100-200 bytes per file: 256 MiB is over a million files. */
export const MAX_MANIFEST = 256 * 1024 * 1024;

/** The tar end-of-archive marker that 13/14 leave to the client (pg_basebackup adds it). */
const TAR_TRAILER = Buffer.alloc(1024);

export async function receiveBaseBackup(
  queue: MessageQueue,
  newProtocol: boolean,
  archiveSuffix: string,
  handlers: BaseBackupHandlers,
): Promise<BaseBackupPositions> {
  const start = await readPosition(queue, 'the backup start position');
  const tablespaces = await readTablespaces(queue);
  if (newProtocol) await readCopyStream(queue, tablespaces, archiveSuffix, handlers);
  else await readCopyPerTablespace(queue, tablespaces, handlers);
  const end = await readPosition(queue, 'the backup end position');
  // CommandComplete of BASE_BACKUP, then ReadyForQuery: only then has the server finished without error.
  for (;;) {
    const message = await queue.next('the end of the BASE_BACKUP command');
    if (message.type === 'Z') break;
    if (message.type !== 'C') throw unexpected(message, 'the end of the BASE_BACKUP command');
  }
  return { startLsn: start.lsn, startTimeline: start.timeline, endLsn: end.lsn, endTimeline: end.timeline, tablespaces: tablespaces.filter((t): t is Tablespace => t !== undefined) };
}

/** A result set of rows of `columns` columns: RowDescription, DataRow*, CommandComplete. */
async function readResultSet(queue: MessageQueue, what: string, columns: number, maxRows: number): Promise<(string | null)[][]> {
  const description = await queue.next(what);
  if (description.type !== 'T') throw unexpected(description, what);
  const count = rowDescriptionColumns(description.body);
  if (count !== columns) throw new ProtocolError(`${what} has ${count} columns where ${columns} are expected`);
  const rows: (string | null)[][] = [];
  for (;;) {
    const message = await queue.next(what);
    if (message.type === 'C') return rows;
    if (message.type !== 'D') throw unexpected(message, what);
    if (rows.length >= maxRows) throw new ProtocolError(`${what} has more than ${maxRows} rows`);
    const row = parseDataRow(message.body, columns);
    if (row.length !== columns) throw new ProtocolError(`${what} has a row of ${row.length} columns where ${columns} are expected`);
    rows.push(row);
  }
}

async function readPosition(queue: MessageQueue, what: string): Promise<{ lsn: string; timeline: number }> {
  const rows = await readResultSet(queue, what, 2, 1);
  if (rows.length !== 1) throw new ProtocolError(`${what} has ${rows.length} rows where 1 is expected`);
  const [lsn, tli] = rows[0];
  if (lsn === null || !/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/.test(lsn)) throw new ProtocolError(`${what} is not an LSN: ${JSON.stringify(lsn?.slice(0, 40))}`);
  if (tli === null || !/^[0-9]{1,10}$/.test(tli) || Number(tli) < 1 || Number(tli) > 0xffffffff) throw new ProtocolError(`${what} has an invalid timeline: ${JSON.stringify(tli?.slice(0, 40))}`);
  parseLsn(lsn);
  return { lsn, timeline: Number(tli) };
}

async function readTablespaces(queue: MessageQueue): Promise<(Tablespace | undefined)[]> {
  const rows = await readResultSet(queue, 'the tablespace list', 3, MAX_TABLESPACES + 1);
  const list: (Tablespace | undefined)[] = [];
  const seen = new Set<number>();
  for (const [oid, location] of rows) {
    if (oid === null) {
      if (list.includes(undefined)) throw new ProtocolError('the tablespace list names the main data directory twice');
      list.push(undefined);
      continue;
    }
    if (!/^[1-9][0-9]{0,9}$/.test(oid) || Number(oid) > 0xffffffff) throw new ProtocolError(`the tablespace list has an invalid oid ${JSON.stringify(oid.slice(0, 40))}`);
    if (seen.has(Number(oid))) throw new ProtocolError(`the tablespace list names tablespace ${oid} twice`);
    if (location === null || !location.startsWith('/') || Buffer.byteLength(location) > MAX_PATH || location.includes('\0')) {
      throw new ProtocolError(`the tablespace list has an invalid location for tablespace ${oid}`);
    }
    seen.add(Number(oid));
    list.push({ oid: Number(oid), location });
  }
  if (!list.includes(undefined)) throw new ProtocolError('the tablespace list lacks the main data directory');
  return list;
}

/** 15+: one CopyOut holding every archive and the manifest. */
async function readCopyStream(queue: MessageQueue, tablespaces: (Tablespace | undefined)[], suffix: string, handlers: BaseBackupHandlers): Promise<void> {
  const response = await queue.next('the start of the backup stream (CopyOutResponse)');
  if (response.type !== 'H') throw unexpected(response, 'the start of the backup stream (CopyOutResponse)');
  const done = new Set<Tablespace | undefined>();
  let manifest: Buffer[] | undefined;
  let manifestBytes = 0;
  for (;;) {
    const message = await queue.next('backup data');
    if (message.type === 'c') break;
    if (message.type !== 'd') throw unexpected(message, 'backup data');
    const kind = message.body.length > 0 ? String.fromCharCode(message.body[0]) : '';
    if (kind === 'n') {
      if (manifest) throw new ProtocolError('the server began a new archive after the manifest');
      const reader = new BodyReader(message.body.subarray(1), 'a new-archive message');
      const name = reader.cstring(MAX_PATH);
      const location = reader.cstring(MAX_PATH);
      reader.end();
      const tablespace = location === '' ? undefined : tablespaces.find((t) => t?.location === location);
      if (location !== '' && !tablespace) throw new ProtocolError(`the server sent an archive for ${JSON.stringify(location)}, which its tablespace list does not name`);
      const expected = `${tablespace ? tablespace.oid : 'base'}.tar${suffix}`;
      if (name !== expected) throw new ProtocolError(`the server sent an archive named ${JSON.stringify(name)} where ${JSON.stringify(expected)} is expected`);
      if (done.has(tablespace)) throw new ProtocolError(`the server sent the archive ${name} twice`);
      done.add(tablespace);
      await handlers.onArchive({ name, tablespace }, Readable.from(archiveData(queue, handlers), { objectMode: false, highWaterMark: 256 * 1024 }));
    } else if (kind === 'm') {
      if (manifest) throw new ProtocolError('the server sent the manifest twice');
      manifest = [];
    } else if (kind === 'd') {
      if (!manifest) throw new ProtocolError('the server sent data outside an archive');
      manifestBytes += message.body.length - 1;
      if (manifestBytes > MAX_MANIFEST) throw new ProtocolError(`the server's backup_manifest is larger than ${MAX_MANIFEST} bytes`);
      manifest.push(Buffer.from(message.body.subarray(1)));
    } else if (kind === 'p') {
      handlers.onProgress?.(progressBytes(message.body));
    } else {
      throw new ProtocolError(`the backup stream has a message of unknown kind ${JSON.stringify(kind)}`);
    }
  }
  const missing = tablespaces.filter((t) => !done.has(t));
  if (missing.length) throw new ProtocolError(`the backup stream ended without the archive of ${missing.map((t) => (t ? `tablespace ${t.oid}` : 'the main data directory')).join(', ')}`);
  if (!manifest) throw new ProtocolError('the backup stream ended without the backup_manifest that was asked for');
  await handlers.onManifest(Buffer.concat(manifest, manifestBytes));
}

/** The 'd' messages of the current archive (15+), up to the message that ends it (put back for the caller). */
async function* archiveData(queue: MessageQueue, handlers: BaseBackupHandlers): AsyncGenerator<Buffer> {
  for (;;) {
    const message = await queue.next('backup data');
    const kind = message.type === 'd' && message.body.length > 0 ? message.body[0] : 0;
    if (kind === 0x64) yield message.body.subarray(1); // 'd'
    else if (kind === 0x70) handlers.onProgress?.(progressBytes(message.body)); // 'p'
    else if (message.type === 'c' || kind === 0x6e || kind === 0x6d) {
      // CopyDone, 'n' or 'm': this archive is complete; the caller reads on from there.
      queue.putBack(message);
      return;
    } else if (message.type === 'd') {
      throw new ProtocolError(`the backup stream has a message of unknown kind ${JSON.stringify(message.body.length ? String.fromCharCode(message.body[0]) : '')}`);
    } else throw unexpected(message, 'backup data');
  }
}

function progressBytes(body: Buffer): number {
  const reader = new BodyReader(body.subarray(1), 'a progress message');
  const bytes = reader.int64();
  reader.end();
  return Number(bytes);
}

/** 13/14: a CopyOut per tablespace, then the manifest's. */
async function readCopyPerTablespace(queue: MessageQueue, tablespaces: (Tablespace | undefined)[], handlers: BaseBackupHandlers): Promise<void> {
  for (const tablespace of tablespaces) {
    await copyOutStart(queue, `the archive of ${tablespace ? `tablespace ${tablespace.oid}` : 'the main data directory'}`);
    const name = `${tablespace ? tablespace.oid : 'base'}.tar`;
    await handlers.onArchive({ name, tablespace }, Readable.from(copyData(queue, TAR_TRAILER), { objectMode: false, highWaterMark: 256 * 1024 }));
  }
  await copyOutStart(queue, 'the backup_manifest');
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const part of copyData(queue)) {
    bytes += part.length;
    if (bytes > MAX_MANIFEST) throw new ProtocolError(`the server's backup_manifest is larger than ${MAX_MANIFEST} bytes`);
    parts.push(Buffer.from(part));
  }
  await handlers.onManifest(Buffer.concat(parts, bytes));
}

async function copyOutStart(queue: MessageQueue, what: string): Promise<void> {
  const message = await queue.next(what);
  if (message.type !== 'H') throw unexpected(message, what);
}

/** The CopyData of one CopyOut up to its CopyDone, then `trailer`. */
async function* copyData(queue: MessageQueue, trailer?: Buffer): AsyncGenerator<Buffer> {
  for (;;) {
    const message = await queue.next('backup data');
    if (message.type === 'c') break;
    if (message.type !== 'd') throw unexpected(message, 'backup data');
    yield message.body;
  }
  if (trailer) yield trailer;
}

function unexpected(message: BackendMessage, expecting: string): ProtocolError {
  const type = /^[ -~]$/.test(message.type) ? `'${message.type}'` : `0x${message.type.charCodeAt(0).toString(16)}`;
  return new ProtocolError(`the server sent a message of type ${type} where pgharbor expected ${expecting}`);
}
