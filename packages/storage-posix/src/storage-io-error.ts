import { HarborError } from '@pgharbor/core';

/** The errno code of a failed fs call ("EACCES", "ENOENT", …), if it is one. */
export function fsCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A filesystem failure as a HarborError: the repository, what failed, the OS
 * error (which names the exact path and syscall), and what to check.
 */
export function storageIoError(location: string, what: string, error: unknown): Error {
  if (error instanceof HarborError || fsCode(error) === undefined) return error as Error;
  const os = (error as Error).message;
  return new HarborError(`posix storage ${location}: ${what}: ${os}`, { hint: hintFor(location, fsCode(error)), cause: error });
}

function hintFor(location: string, code: string | undefined): string | undefined {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return `check the ownership and permissions of ${location} and its parent directories: the user running pgharbor must be able to create and write files there`;
    case 'ENOTDIR':
    case 'EEXIST':
      return `${location} (or one of its parents, or a directory inside the repository) is not a directory; check the storage path and the ownership and permissions of the directories on it`;
    case 'EROFS':
      return `the filesystem holding ${location} is mounted read-only`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `the filesystem holding ${location} is full (or over quota); free space or expire old backups`;
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files; raise the open file limit (ulimit -n)';
    default:
      return undefined;
  }
}
