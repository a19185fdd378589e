import { readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { ClientConfig } from 'pg';
import { ConfigError, errorMessage } from '../errors.js';
import { addSecret } from '../log.js';
import { parseConninfo, type ConninfoParams } from './conninfo.js';
import { connectionPassword } from './tool-connection.js';
import { passwordFromPassfile } from './passfile.js';
import { serviceParams } from './service-file.js';

/**
 * How pgharbor's own SQL connections (node-postgres) follow a libpq
 * conninfo: the same keywords, environment variables, default files under
 * ~/.postgresql/ and sslmode semantics as psql and pg_basebackup, so that a
 * conninfo means one thing whichever program uses it.
 */
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface PgConnectPlan {
  /** node-postgres settings, without `ssl` (each attempt brings its own). */
  config: ClientConfig;
  /** The attempts in libpq's order: `false` plain, an object TLS. */
  attempts: (false | tls.ConnectionOptions)[];
  sslmode: SslMode;
  /** allow/prefer: the second attempt is made only after a failure libpq would retry after. */
  fallback?: 'to-tls-after-server-error' | 'to-plain-after-tls-failure';
}

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/** libpq reads these when the keyword is absent (node-postgres reads PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD itself). */
const ENV_DEFAULTS: Record<string, string> = {
  hostaddr: 'PGHOSTADDR', sslmode: 'PGSSLMODE', requiressl: 'PGREQUIRESSL', sslrootcert: 'PGSSLROOTCERT', sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY', sslcrl: 'PGSSLCRL', sslcrldir: 'PGSSLCRLDIR', sslnegotiation: 'PGSSLNEGOTIATION',
  ssl_min_protocol_version: 'PGSSLMINPROTOCOLVERSION', ssl_max_protocol_version: 'PGSSLMAXPROTOCOLVERSION',
  application_name: 'PGAPPNAME', connect_timeout: 'PGCONNECT_TIMEOUT', options: 'PGOPTIONS', client_encoding: 'PGCLIENTENCODING',
  channel_binding: 'PGCHANNELBINDING', require_auth: 'PGREQUIREAUTH', gssencmode: 'PGGSSENCMODE',
  sslcertmode: 'PGSSLCERTMODE', requirepeer: 'PGREQUIREPEER', target_session_attrs: 'PGTARGETSESSIONATTRS',
};

/**
 * Settings that demand something node-postgres cannot do. Ignoring them
 * would quietly connect with less than the operator asked for, so the SQL
 * connection refuses them (the PostgreSQL tools still receive them).
 */
const DEMANDS: Record<string, (value: string) => boolean> = {
  requirepeer: () => true,
  require_auth: () => true,
  channel_binding: (v) => v === 'require',
  gssencmode: (v) => v === 'require',
  sslcertmode: (v) => v === 'require',
};

/** Settings that only tune behaviour node-postgres has no knob for; the PostgreSQL tools receive them. */
const TOOL_ONLY = new Set([
  'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'target_session_attrs', 'load_balance_hosts',
  'krbsrvname', 'gsslib', 'gssdelegation', 'sslcompression', 'sslkeylogfile', 'sslsni', 'min_protocol_version', 'max_protocol_version',
  'oauth_issuer', 'oauth_client_id', 'oauth_client_secret', 'oauth_scope', 'gssencmode', 'channel_binding', 'sslcertmode',
]);

const TLS_VERSIONS: Record<string, tls.SecureVersion> = { TLSv1: 'TLSv1', 'TLSv1.1': 'TLSv1.1', 'TLSv1.2': 'TLSv1.2', 'TLSv1.3': 'TLSv1.3' };

export function conninfoToConnectPlan(conninfo: string, password?: string, env: NodeJS.ProcessEnv = process.env): PgConnectPlan {
  let params: ConninfoParams = parseConninfo(conninfo);
  const service = params.service ?? env.PGSERVICE;
  if (service) {
    const { service: _named, ...own } = params;
    params = { ...serviceParams(service, env), ...own };
  }
  for (const [key, variable] of Object.entries(ENV_DEFAULTS)) {
    if (params[key] === undefined && env[variable]) params[key] = env[variable]!;
  }
  const config: ClientConfig = {};
  for (const [key, value] of Object.entries(params)) {
    if (DEMANDS[key]?.(value)) {
      throw new ConfigError(
        `conninfo: ${key}=${value} cannot be honoured by pgharbor's own SQL connection (node-postgres)`,
        `remove ${key} from conninfo, or enforce it on the server (pg_hba.conf)`,
      );
    }
    switch (key) {
      case 'host':
        if (value.includes(',')) throw new ConfigError(`conninfo: several hosts (host=${value}) cannot be tried in turn by pgharbor's SQL connection`, 'name one host per server section');
        config.host = value;
        break;
      case 'passfile': break; // below, once host, port, dbname and user are known
      case 'hostaddr': break; // below: it replaces host for the connection, host stays the TLS name
      case 'port':
        if (!/^\d+$/.test(value)) throw new ConfigError(`conninfo: invalid port "${value}"`, 'give one port number, e.g. port=5432');
        config.port = Number(value);
        break;
      case 'user': config.user = value; break;
      case 'dbname': config.database = value; break;
      case 'password': config.password = value; break;
      case 'application_name': config.application_name = value; break;
      case 'fallback_application_name': config.fallback_application_name = value; break;
      case 'options': config.options = value; break;
      case 'client_encoding': (config as { client_encoding?: string }).client_encoding = value; break;
      case 'replication': (config as { replication?: string }).replication = value; break;
      case 'connect_timeout': if (Number(value) > 0) config.connectionTimeoutMillis = Math.max(2, Number(value)) * 1000; break;
      case 'keepalives': config.keepAlive = value !== '0'; break;
      case 'keepalives_idle': config.keepAliveInitialDelayMillis = Number(value) * 1000; break;
      case 'sslnegotiation':
        if (value !== 'postgres' && value !== 'direct') throw new ConfigError(`conninfo: invalid sslnegotiation "${value}"`, 'use postgres or direct');
        (config as { sslNegotiation?: string }).sslNegotiation = value;
        break;
      default:
        // ssl* and requiressl are read below; the rest the PostgreSQL tools use.
        if (!key.startsWith('ssl') && key !== 'requiressl' && !TOOL_ONLY.has(key)) throw new Error(`conninfo keyword ${key} is not mapped`);
    }
  }
  // libpq defaults to the local socket; node-postgres to localhost TCP. Follow libpq, as pg_basebackup will.
  if (!config.host && !env.PGHOST && !params.hostaddr) config.host = '/var/run/postgresql';
  const tlsName = config.host ?? env.PGHOST ?? params.hostaddr;
  if (params.hostaddr) config.host = params.hostaddr;
  config.password = connectionPassword(params.password, password);
  if (config.password === undefined && !env.PGPASSWORD && params.passfile) {
    config.password = passwordFromPassfile(params.passfile, { host: tlsName, port: config.port, database: config.database ?? env.PGDATABASE, user: config.user ?? env.PGUSER });
  }

  const sslmode = sslModeOf(params);
  if (sslmode === 'disable' || isSocket(config.host ?? env.PGHOST)) {
    // libpq never uses TLS over a Unix-domain socket, whatever sslmode says.
    return { config, attempts: [false], sslmode };
  }
  if ((config as { sslNegotiation?: string }).sslNegotiation === 'direct' && (sslmode === 'allow' || sslmode === 'prefer')) {
    throw new ConfigError(`conninfo: sslnegotiation=direct needs sslmode require, verify-ca or verify-full (it is ${sslmode})`, 'raise sslmode, or use sslnegotiation=postgres');
  }
  const tlsOptions = tlsOptionsFor(params, sslmode, tlsName ?? 'localhost');
  if (sslmode === 'allow') return { config, attempts: [false, tlsOptions], sslmode, fallback: 'to-tls-after-server-error' };
  if (sslmode === 'prefer') return { config, attempts: [tlsOptions, false], sslmode, fallback: 'to-plain-after-tls-failure' };
  return { config, attempts: [tlsOptions], sslmode };
}

function sslModeOf(params: ConninfoParams): SslMode {
  const value = params.sslmode ?? (params.requiressl === '1' ? 'require' : 'prefer');
  if (!SSL_MODES.includes(value as SslMode)) {
    throw new ConfigError(`conninfo: invalid sslmode "${value}"`, `use one of ${SSL_MODES.join(', ')}`);
  }
  return value as SslMode;
}

const isSocket = (host: string | undefined) => host !== undefined && (host.startsWith('/') || host.startsWith('@'));

/**
 * TLS settings with libpq's meaning: a root certificate (sslrootcert, else
 * ~/.postgresql/root.crt if it exists) makes every mode verify the chain
 * (libpq: "require with a root CA file behaves as verify-ca");
 * verify-full also checks the host name against the certificate.
 */
function tlsOptionsFor(params: ConninfoParams, sslmode: SslMode, hostName: string): tls.ConnectionOptions {
  const home = path.join(os.homedir(), '.postgresql');
  const options: tls.ConnectionOptions = {};
  const verify = sslmode === 'verify-ca' || sslmode === 'verify-full';

  if (params.sslrootcert === 'system') {
    // PostgreSQL 16: the system's trusted roots, allowed only with full verification.
    if (sslmode !== 'verify-full') {
      throw new ConfigError(`conninfo: weak sslmode "${sslmode}" may not be used with sslrootcert=system`, 'use sslmode=verify-full');
    }
    options.rejectUnauthorized = true;
  } else {
    const rootcert = readOptional('sslrootcert', params.sslrootcert, path.join(home, 'root.crt'));
    if (rootcert) {
      options.ca = rootcert;
      options.rejectUnauthorized = true;
      const crl = readOptional('sslcrl', params.sslcrl, path.join(home, 'root.crl'));
      const crls = [...(crl ? [crl] : []), ...(params.sslcrldir ? readCrlDir(params.sslcrldir) : [])];
      if (crls.length > 0) options.crl = crls;
    } else if (verify) {
      const file = params.sslrootcert ?? path.join(home, 'root.crt');
      throw new ConfigError(
        `conninfo: root certificate file "${file}" does not exist (sslmode=${sslmode} verifies the server's certificate)`,
        'give the CA file with sslrootcert=FILE, use the system\'s trusted roots with sslrootcert=system, or lower sslmode to require (no verification)',
      );
    } else {
      options.rejectUnauthorized = false;
    }
  }
  // verify-full checks the name; every other mode (verify-ca, or a root file with require) the chain only.
  options.checkServerIdentity = sslmode === 'verify-full' ? (_servername, cert) => tls.checkServerIdentity(hostName, cert) : () => undefined;

  const cert = readOptional('sslcert', params.sslcert, path.join(home, 'postgresql.crt'));
  if (cert) {
    options.cert = cert;
    const keyFile = params.sslkey ?? path.join(home, 'postgresql.key');
    checkKeyPermissions(keyFile);
    options.key = readRequired('sslkey', keyFile);
    if (params.sslpassword) {
      addSecret(params.sslpassword);
      options.passphrase = params.sslpassword;
    }
  }
  for (const [key, field] of [['ssl_min_protocol_version', 'minVersion'], ['ssl_max_protocol_version', 'maxVersion']] as const) {
    const value = params[key];
    if (value === undefined || value === '') continue;
    if (!TLS_VERSIONS[value]) throw new ConfigError(`conninfo: invalid ${key} "${value}"`, `use one of ${Object.keys(TLS_VERSIONS).join(', ')}`);
    options[field] = TLS_VERSIONS[value];
  }
  options.minVersion ??= 'TLSv1.2'; // libpq's default since PostgreSQL 14
  return options;
}

/** A file named by `keyword` must be readable; the default one is used only if it exists. */
function readOptional(keyword: string, named: string | undefined, fallback: string): Buffer | undefined {
  if (named !== undefined && named !== '') return readRequired(keyword, named);
  try {
    return readFileSync(fallback);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw unreadable(keyword, fallback, error);
  }
}

function readRequired(keyword: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw unreadable(keyword, file, error);
  }
}

function unreadable(keyword: string, file: string, error: unknown): ConfigError {
  return new ConfigError(`conninfo: cannot read ${keyword} file "${file}": ${errorMessage(error)}`, `fix ${keyword} in conninfo (or the file's permissions for the user running pgharbor)`);
}

function readCrlDir(dir: string): Buffer[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw unreadable('sslcrldir', dir, error);
  }
  return names.map((name) => readRequired('sslcrldir', path.join(dir, name)));
}

/** libpq refuses a private key others can read: 0600, or 0640 when root owns it. */
function checkKeyPermissions(file: string): void {
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    throw unreadable('sslkey', file, error);
  }
  const rootOwned = stat.uid === 0 && (stat.mode & 0o037) === 0;
  if ((stat.mode & 0o077) !== 0 && !rootOwned) {
    throw new ConfigError(`conninfo: private key file "${file}" has group or world access`, `chmod 600 ${file} (or 640 if root owns it)`);
  }
}
