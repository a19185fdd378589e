import { HarborError, errorMessage } from '@pgharbor/core';

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 puts them in `error.code`. */
export const SFTP_EOF = 1;
export const SFTP_NO_SUCH_FILE = 2;
export const SFTP_PERMISSION_DENIED = 3;
export const SFTP_FAILURE = 4;

export function sftpCode(error: unknown): number | string | undefined {
  return (error as { code?: number | string } | undefined)?.code;
}

export function isNoSuchFile(error: unknown): boolean {
  return sftpCode(error) === SFTP_NO_SUCH_FILE;
}

/**
 * True when an operation failed because the SSH connection went away
 * (server restart, network cut, idle timeout) rather than because of the
 * file system: such operations can be retried on a new connection.
 */
export function isConnectionLost(error: unknown): boolean {
  const code = sftpCode(error);
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_SOCKET_CLOSED' || code === 'ECONNABORTED') return true;
  return /No response from server|Not connected|Channel not open|connection (lost|closed)|socket (hang up|has been ended)|write after end|No SFTP connection/i.test(
    errorMessage(error),
  );
}

/** A connection-level failure carries what to check; file-level ones the path and the OS's reason. */
export function sftpError(location: string, what: string, error: unknown, hint?: string): Error {
  if (error instanceof HarborError) return error;
  const code = sftpCode(error);
  return new HarborError(`sftp repository ${location}: ${what}: ${errorMessage(error)}${typeof code === 'string' ? ` (${code})` : ''}`, {
    hint: hint ?? hintFor(error),
    cause: error,
  });
}

function hintFor(error: unknown): string | undefined {
  const code = sftpCode(error);
  const message = errorMessage(error);
  if (code === SFTP_PERMISSION_DENIED) return 'the SSH user cannot write there: check the ownership and permissions of the repository path on the server';
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || /Timed out/i.test(message)) {
    return 'the SSH server cannot be reached: check "host" and "port", the network, and that sshd runs';
  }
  if (/authentication methods failed/i.test(message)) {
    return 'the server refused the key: check "user", "private_key_file" (or the ssh-agent) and the server\'s authorized_keys';
  }
  if (isConnectionLost(error)) return 'the SSH connection dropped; run the command again';
  return undefined;
}
