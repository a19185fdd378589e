import { ConfigError } from '../errors.js';
import { addSecret } from '../log.js';

/**
 * libpq connection strings, as DBAs write them for Barman: keyword=value
 * ("host=pga user=barman dbname=postgres") or a URI
 * (postgresql://barman@pga/postgres?sslmode=verify-full), read as libpq
 * reads them. A keyword libpq does not know is an error here, as it is in
 * libpq, instead of a setting that silently does nothing.
 */
export type ConninfoParams = Record<string, string>;

/**
 * Every keyword of libpq 13 to 18 (PostgreSQL's "Parameter Key Words").
 * A keyword a given pg_basebackup does not know yet is refused by that
 * tool itself, with libpq's own message.
 */
export const LIBPQ_KEYWORDS: ReadonlySet<string> = new Set([
  'host', 'hostaddr', 'port', 'dbname', 'user', 'password', 'passfile', 'require_auth', 'channel_binding',
  'connect_timeout', 'client_encoding', 'options', 'application_name', 'fallback_application_name',
  'keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout',
  'replication', 'gssencmode', 'sslmode', 'requiressl', 'sslnegotiation', 'sslcompression', 'sslcert', 'sslkey',
  'sslkeylogfile', 'sslpassword', 'sslcertmode', 'sslrootcert', 'sslcrl', 'sslcrldir', 'sslsni', 'requirepeer',
  'ssl_min_protocol_version', 'ssl_max_protocol_version', 'min_protocol_version', 'max_protocol_version',
  'krbsrvname', 'gsslib', 'gssdelegation', 'service', 'target_session_attrs', 'load_balance_hosts',
  'oauth_issuer', 'oauth_client_id', 'oauth_client_secret', 'oauth_scope',
]);

/** Keywords whose value is a secret: never on a command line, never in a message. */
export const SECRET_KEYWORDS: ReadonlySet<string> = new Set(['password', 'sslpassword', 'oauth_client_secret']);

const URI_PREFIX = /^postgres(?:ql)?:\/\//;

export function isConninfoUri(conninfo: string): boolean {
  return URI_PREFIX.test(conninfo);
}

/** keyword=value or URI → keywords. Secrets found are registered for redaction. */
export function parseConninfo(conninfo: string): ConninfoParams {
  const params = isConninfoUri(conninfo) ? parseUri(conninfo) : parseKeywordValue(conninfo);
  for (const key of Object.keys(params)) {
    if (!LIBPQ_KEYWORDS.has(key)) throw unknownKeyword(key);
    if (SECRET_KEYWORDS.has(key)) addSecret(params[key]);
  }
  return params;
}

function unknownKeyword(key: string): ConfigError {
  const close = [...LIBPQ_KEYWORDS].find((known) => editDistance(known, key.toLowerCase()) <= 2);
  return new ConfigError(
    `conninfo: unknown connection option "${key}"`,
    close ? `did you mean "${close}"?` : 'use libpq keywords only (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS)',
  );
}

/** Levenshtein distance, for "did you mean" (keywords are short: the quadratic cost is nothing). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length];
}

/** libpq's conninfo_parse: values bare or in single quotes, backslash escapes in both. */
function parseKeywordValue(conninfo: string): ConninfoParams {
  const out: ConninfoParams = {};
  let i = 0;
  const n = conninfo.length;
  const space = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (i < n) {
    while (space(conninfo[i])) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && conninfo[i] !== '=' && !space(conninfo[i])) i++;
    const key = conninfo.slice(start, i);
    while (space(conninfo[i])) i++;
    if (conninfo[i] !== '=' || key === '') {
      throw new ConfigError(`conninfo: cannot parse connection string near "${conninfo.slice(start, start + 20)}"`, 'use keyword=value pairs, e.g. "host=pga user=barman dbname=postgres"');
    }
    i++;
    while (space(conninfo[i])) i++;
    let value = '';
    if (conninfo[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) throw new ConfigError(`conninfo: unterminated quoted value of "${key}"`, "close the value with ' (write \\' for a quote inside it)");
        const c = conninfo[i++];
        if (c === "'") break;
        if (c === '\\' && i < n) value += conninfo[i++];
        else value += c;
      }
    } else {
      while (i < n && !space(conninfo[i])) {
        const c = conninfo[i++];
        if (c === '\\' && i < n) value += conninfo[i++];
        else value += c;
      }
    }
    out[key] = value;
  }
  return out;
}

/**
 * postgresql://[user[:password]@][host[:port][,host[:port]…]][/dbname][?keyword=value&…],
 * percent-decoded; a host in [] is an IPv6 address, a host starting with %2F a socket directory.
 */
function parseUri(uri: string): ConninfoParams {
  const out: ConninfoParams = {};
  let rest = uri.replace(URI_PREFIX, '');
  const queryAt = rest.indexOf('?');
  const query = queryAt >= 0 ? rest.slice(queryAt + 1) : '';
  if (queryAt >= 0) rest = rest.slice(0, queryAt);
  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const dbname = slash >= 0 ? rest.slice(slash + 1) : '';
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const user = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, 'user name');
    if (user) out.user = user;
    if (colon >= 0) out.password = decode(userinfo.slice(colon + 1), 'password');
  }
  const hostlist = at >= 0 ? authority.slice(at + 1) : authority;
  if (hostlist) {
    const hosts: string[] = [];
    const ports: string[] = [];
    for (const hostport of hostlist.split(',')) {
      const match = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostport)!;
      hosts.push(decode(match[1].replace(/^\[(.*)\]$/, '$1'), 'host'));
      ports.push(match[2] ?? '');
    }
    if (hosts.some(Boolean)) out.host = hosts.join(',');
    if (ports.some(Boolean)) out.port = ports.join(',');
  }
  if (dbname) out.dbname = decode(dbname, 'database name');
  for (const pair of query.split('&').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq < 0) throw new ConfigError(`conninfo: URI parameter "${decode(pair, 'parameter')}" has no value`, 'write it as keyword=value, e.g. ?sslmode=verify-full');
    const key = decode(pair.slice(0, eq), 'parameter');
    const value = decode(pair.slice(eq + 1), key);
    // libpq's JDBC compatibility: ssl=true means sslmode=require.
    if (key === 'ssl' && value === 'true') out.sslmode = 'require';
    else out[key] = value;
  }
  return out;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConfigError(`conninfo: invalid percent-encoding in the URI's ${what}`, 'encode special characters as %XX (e.g. %40 for @, %2F for /)');
  }
}

const quote = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Keywords → a keyword=value string for libpq (every value quoted). */
export function formatConninfo(params: ConninfoParams): string {
  return Object.entries(params).map(([k, v]) => `${k}=${quote(v)}`).join(' ');
}

/** Add or replace keywords (e.g. application_name) in a conninfo; the result is keyword=value. */
export function withConninfoParams(conninfo: string, params: Record<string, string>): string {
  return formatConninfo({ ...parseConninfo(conninfo), ...params });
}

/** A conninfo to write somewhere others may read (a restored standby's primary_conninfo): every secret keyword removed. */
export function withoutSecrets(conninfo: string, params: Record<string, string> = {}): string {
  const kept = Object.entries(parseConninfo(conninfo)).filter(([key]) => !SECRET_KEYWORDS.has(key));
  return formatConninfo({ ...Object.fromEntries(kept), ...params });
}
