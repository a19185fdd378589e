import { ConfigError } from '../errors.js';
import { addSecret } from '../log.js';
import { formatConninfo, parseConninfo } from './conninfo.js';

/**
 * How a PostgreSQL program pgharbor runs (pg_basebackup, pg_receivewal)
 * connects: `--dbname` carries the conninfo without its password, and the
 * password travels in that child's environment (PGPASSWORD), never on its
 * command line, where `ps` would show it to every local user.
 * /proc/PID/environ is readable only by the same user and root.
 */
export interface ToolConnection {
  /** keyword=value for --dbname, with no secret in it. */
  conninfo: string;
  /** The child's whole environment. */
  env: NodeJS.ProcessEnv;
}

export function toolConnection(
  conninfo: string,
  configuredPassword: string | undefined,
  extra: Record<string, string> = {},
  baseEnv: NodeJS.ProcessEnv = process.env,
): ToolConnection {
  const { password: inline, ...params } = parseConninfo(conninfo);
  for (const key of ['sslpassword', 'oauth_client_secret']) {
    if (params[key] !== undefined) {
      throw new ConfigError(
        `conninfo: ${key} cannot be given to the PostgreSQL tools without showing it on their command line`,
        key === 'sslpassword' ? 'use a client key without a passphrase, readable only by the user running pgharbor (chmod 600)' : `remove ${key} from conninfo`,
      );
    }
  }
  const password = connectionPassword(inline, configuredPassword);
  const env = { ...baseEnv };
  if (password !== undefined) env.PGPASSWORD = password;
  return { conninfo: formatConninfo({ ...params, ...extra }), env };
}

/** The password of a connection: inline in conninfo or from `password:`, not two different ones. */
export function connectionPassword(inline: string | undefined, configured: string | undefined): string | undefined {
  if (inline !== undefined && configured !== undefined && inline !== configured) {
    throw new ConfigError(
      'conninfo has a password= and the server section a password: setting, and they differ',
      'give the password once: preferably as password: { from_file: FILE } and without password= in conninfo',
    );
  }
  const password = inline ?? configured;
  addSecret(password);
  return password;
}
