import { HarborError, errorMessage } from '@pgharbor/core';
import { ConnectionLostError, ProtocolError } from './protocol-messages.js';
import { ServerError } from './replication-session.js';

/**
 * A failure during BASE_BACKUP as an error a DBA can act on: what the
 * server said (ErrorResponse), a stream that is not what PostgreSQL sends,
 * or a connection that went away. Errors that already say what to do
 * (HarborError from the sink, the config) pass through, and so does
 * anything that is not the stream's doing: runBackup names the backup.
 */
export function backupStreamError(server: string, error: unknown): unknown {
  if (error instanceof HarborError) return error;
  const refused = asServerError(error);
  if (refused) {
    const { M: message = '', C: code = '' } = refused.fields;
    let hint = `see the server's log; run \`pgharbor check ${server}\`, then take the backup again`;
    if (/max_wal_senders|too many clients|replication slots/.test(message) || code === '53300') hint = 'raise max_wal_senders (restart needed) or stop other WAL senders';
    else if (code === '42501' || /must be superuser or replication role|permission denied/.test(message)) hint = 'ALTER ROLE <user> REPLICATION for the streaming_conninfo user';
    else if (/backup.*in progress|exclusive backup/i.test(message)) hint = 'another backup is running on this server: wait for it to end';
    else if (/WAL.*(removed|recycled)|requested WAL segment/.test(message)) hint = 'the server removed WAL the backup needs: check that the temporary replication slot can be created (max_replication_slots)';
    else if (/does not support compression/.test(message)) hint = 'this PostgreSQL build lacks that compression library: choose another server_compression (gzip is always built in) or none';
    else if (code === '57P01' || /terminating/.test(message)) hint = 'the server was shut down or the WAL sender was terminated (pg_terminate_backend): take the backup again';
    const detail = refused.fields.D ? ` (${refused.fields.D})` : '';
    return new HarborError(`server ${server}: PostgreSQL ended the backup with an error: ${refused.message}${detail}`, { hint, cause: error });
  }
  if (error instanceof ProtocolError) {
    return new HarborError(`server ${server}: the backup stream is not what a PostgreSQL server sends: ${error.message}`, {
      hint: 'check what answers on streaming_conninfo (a proxy or pooler must pass replication connections through unchanged); the backup is marked FAILED',
      cause: error,
    });
  }
  const code = (error as NodeJS.ErrnoException).code;
  // node-pg's own words when the socket closes under a query of the session's first steps.
  if (error instanceof ConnectionLostError || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || /^Connection terminated/.test(errorMessage(error))) {
    return new HarborError(`server ${server}: the replication connection was lost during the backup: ${errorMessage(error)}`, {
      hint: 'is the server running? its log says why the WAL sender ended (a restart, pg_terminate_backend, a network failure); take the backup again',
      cause: error,
    });
  }
  // Anything else (a plugin's hook, the storage) is not the stream's doing: the core names the backup and marks it FAILED.
  return error;
}

/**
 * An ErrorResponse, as the session reads it during BASE_BACKUP, or as
 * node-pg reports it (a DatabaseError with a SQLSTATE) when the server
 * refuses a step before the stream starts (the WAL sender terminated
 * while the slot is created, say): one handling for both.
 */
function asServerError(error: unknown): ServerError | undefined {
  if (error instanceof ServerError) return error;
  const fields = error as { code?: unknown; severity?: unknown; detail?: unknown };
  if (!(error instanceof Error) || typeof fields.code !== 'string' || !/^[0-9A-Z]{5}$/.test(fields.code) || typeof fields.severity !== 'string') return undefined;
  return new ServerError({ M: error.message, C: fields.code, ...(typeof fields.detail === 'string' ? { D: fields.detail } : {}) });
}
