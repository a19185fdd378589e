import type { FileEntryWithStats, InputAttributes, SFTPWrapper, Stats } from 'ssh2';

/** ssh2's callback SFTP requests as promises: one line each, so the driver reads as plain steps. */

type Callback<T> = (error: Error | undefined | null, value: T) => void;

/**
 * Channels whose connection is gone. ssh2 fails the requests pending when a
 * channel ends, but a request sent after that would wait forever: refuse it.
 */
const ended = new WeakSet<SFTPWrapper>();
const watched = new WeakSet<SFTPWrapper>();

function checkOpen(sftp: SFTPWrapper): void {
  if (!watched.has(sftp)) {
    watched.add(sftp);
    const end = () => ended.add(sftp);
    sftp.once('end', end);
    sftp.once('close', end);
  }
  if (ended.has(sftp)) throw Object.assign(new Error('connection lost: the SFTP channel is closed'), { code: 'ECONNRESET' });
}

function call<T>(sftp: SFTPWrapper, start: (callback: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    try {
      checkOpen(sftp);
      start((error, value) => (error ? reject(error) : resolve(value)));
    } catch (error) {
      reject(error); // ssh2 throws synchronously, e.g. for an extension the server lacks
    }
  });
}

export const stat = (sftp: SFTPWrapper, path: string) => call<Stats>(sftp, (cb) => sftp.stat(path, cb));
export const fstat = (sftp: SFTPWrapper, handle: Buffer) => call<Stats>(sftp, (cb) => sftp.fstat(handle, cb));
export const readdir = (sftp: SFTPWrapper, path: string) => call<FileEntryWithStats[]>(sftp, (cb) => sftp.readdir(path, cb));
export const mkdir = (sftp: SFTPWrapper, path: string, attrs: InputAttributes) => call<void>(sftp, (cb) => sftp.mkdir(path, attrs, cb as never));
export const rmdir = (sftp: SFTPWrapper, path: string) => call<void>(sftp, (cb) => sftp.rmdir(path, cb as never));
export const unlink = (sftp: SFTPWrapper, path: string) => call<void>(sftp, (cb) => sftp.unlink(path, cb as never));
export const open = (sftp: SFTPWrapper, path: string, flags: 'r' | 'wx', attrs: InputAttributes = {}) =>
  call<Buffer>(sftp, (cb) => sftp.open(path, flags, attrs, cb as never));
export const close = (sftp: SFTPWrapper, handle: Buffer) => call<void>(sftp, (cb) => sftp.close(handle, cb as never));
/** fsync@openssh.com: make the file's data durable on the server. */
export const fsync = (sftp: SFTPWrapper, handle: Buffer) => call<unknown>(sftp, (cb) => sftp.ext_openssh_fsync(handle, cb as never));
/** posix-rename@openssh.com: rename(2), replacing the target atomically. */
export const posixRename = (sftp: SFTPWrapper, from: string, to: string) => call<void>(sftp, (cb) => sftp.ext_openssh_rename(from, to, cb as never));
/** Plain SFTP rename: fails when the target exists (OpenSSH does link(2) + unlink(2)). */
export const rename = (sftp: SFTPWrapper, from: string, to: string) => call<void>(sftp, (cb) => sftp.rename(from, to, cb as never));
/** hardlink@openssh.com: link(2), failing when the target exists. */
export const hardlink = (sftp: SFTPWrapper, from: string, to: string) => call<void>(sftp, (cb) => sftp.ext_openssh_hardlink(from, to, cb as never));

export function write(sftp: SFTPWrapper, handle: Buffer, data: Buffer, position: number): Promise<void> {
  return call<void>(sftp, (cb) => sftp.write(handle, data, 0, data.length, position, cb as never));
}

/** Read up to `length` bytes at `position`; fewer at the end of the file (0 at or past it). */
export function read(sftp: SFTPWrapper, handle: Buffer, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  return call<number>(sftp, (cb) => sftp.read(handle, buffer, 0, length, position, cb as never)).then((bytesRead) => buffer.subarray(0, bytesRead ?? 0));
}

/** The server does not implement an extension (ssh2 says so before sending anything). */
export function isUnsupportedExtension(error: unknown): boolean {
  return error instanceof Error && /does not support this extended request/i.test(error.message);
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const isFile = (attrs: { mode: number }) => (attrs.mode & S_IFMT) === S_IFREG;
export const isDirectory = (attrs: { mode: number }) => (attrs.mode & S_IFMT) === S_IFDIR;
