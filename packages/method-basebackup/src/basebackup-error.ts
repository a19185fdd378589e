import { HarborError } from '@pgharbor/core';

/** Turn pg_basebackup's last words into an error with a hint a DBA can act on. */
export function basebackupError(server: string, exitCode: number | undefined, signal: string | undefined, stderr: string): HarborError {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /error|fatal/i.test(l));
  const said = (errors.length ? errors : lines).slice(-2).join(' / ') || 'no output';
  const how = signal ? `killed by ${signal}` : `exit code ${exitCode}`;
  let hint = 'see the message above; run `pgharbor check ' + server + '`';
  if (/pg_hba\.conf/.test(stderr)) hint = 'allow the streaming user to connect for replication in pg_hba.conf (a "replication" line), then reload PostgreSQL';
  else if (/max_wal_senders|too many clients|standby connections/.test(stderr)) hint = 'raise max_wal_senders (restart needed) or stop other WAL senders';
  else if (/password authentication failed|no password supplied/.test(stderr)) hint = 'set streaming_password (from_env or from_file) or add the user to ~/.pgpass';
  else if (/must be superuser or replication role|permission denied/.test(stderr)) hint = 'ALTER ROLE <user> REPLICATION for the streaming_conninfo user';
  else if (/incompatible server version/.test(stderr)) hint = 'use a pg_basebackup at least as new as the server (pg_bin_dir)';
  else if (/could not connect|Connection refused|No such file or directory/.test(stderr)) hint = 'is the server running and listening where streaming_conninfo says?';
  return new HarborError(`server ${server}: pg_basebackup failed (${how}): ${said}`, { hint });
}
