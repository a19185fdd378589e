import type { JsonSchema, JsonSchemaObject, SecretRef } from '@pgharbor/core';

/** The keys of a `{ type: sftp, … }` repository entry, as validated by `sftpStorageSchema`. */
export interface SftpStorageOptions {
  host: string;
  port?: number;
  /** Login name; default: the OS user running pgharbor. */
  user?: string;
  /** Absolute directory of the repository on the remote host; created on first write. */
  path: string;
  /** Private key for public-key authentication (OpenSSH or PEM format). */
  private_key_file?: string;
  /** Passphrase of an encrypted private key. */
  passphrase?: SecretRef;
  /** ssh-agent authentication: true uses $SSH_AUTH_SOCK, a string is the agent's socket. */
  agent?: boolean | string;
  /** known_hosts file(s) to verify the server's host key against; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts. */
  known_hosts_file?: string;
  /** Host key verification; on unless explicitly turned off. */
  verify_host_key?: boolean;
  /** Seconds to wait for the connection and the SSH handshake. */
  connect_timeout?: number;
}

const secretRef: JsonSchema = {
  type: 'object',
  description: 'a secret from the environment ({from_env: VAR}) or a file ({from_file: PATH})',
  oneOf: [
    { type: 'object', properties: { from_env: { type: 'string', minLength: 1 } }, required: ['from_env'], additionalProperties: false },
    { type: 'object', properties: { from_file: { type: 'string', minLength: 1 } }, required: ['from_file'], additionalProperties: false },
  ],
};

export const sftpStorageSchema: JsonSchemaObject = {
  type: 'object',
  properties: {
    host: { type: 'string', minLength: 1, description: 'host name or address of the SFTP server' },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    user: { type: 'string', minLength: 1 },
    // A remote path: not "format: path", which would resolve it against the local config directory.
    path: { type: 'string', pattern: '^/', description: 'absolute directory of the repository on the remote host' },
    private_key_file: { type: 'string', minLength: 1, format: 'path', description: 'private key file for public-key authentication' },
    passphrase: secretRef,
    agent: { oneOf: [{ type: 'boolean' }, { type: 'string', minLength: 1 }], description: 'true for $SSH_AUTH_SOCK, or the path of an ssh-agent socket' },
    known_hosts_file: { type: 'string', minLength: 1, format: 'path', description: 'a known_hosts file holding the server\'s host key' },
    verify_host_key: { type: 'boolean' },
    connect_timeout: { type: 'number', exclusiveMinimum: 0, description: 'seconds' },
  },
  required: ['host', 'path'],
};
