import type { ClientConfig } from 'pg';
import { ConfigError } from '../errors.js';

/**
 * libpq connection strings, as DBAs write them for Barman
 * ("host=pga user=barman dbname=postgres"), parsed into pg's ClientConfig.
 * URIs (postgresql://…) are passed to pg as they are.
 */
export function parseConninfo(conninfo: string): Record<string, string> {
  const out: Record<string, string> = {};
  const pattern = /\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s']+)/y;
  let rest = conninfo.trim();
  while (rest.length > 0) {
    pattern.lastIndex = 0;
    const match = pattern.exec(rest);
    if (!match) throw new ConfigError(`cannot parse connection string near "${rest.slice(0, 20)}"`, 'use keyword=value pairs, e.g. "host=pga user=barman dbname=postgres"');
    out[match[1]] = match[3] !== undefined ? match[3].replace(/\\(.)/g, '$1') : match[2];
    rest = rest.slice(pattern.lastIndex).trim();
  }
  return out;
}

export function conninfoToClientConfig(conninfo: string, password?: string): ClientConfig {
  if (/^postgres(ql)?:\/\//.test(conninfo)) return { connectionString: conninfo, ...(password ? { password } : {}) };
  const kv = parseConninfo(conninfo);
  const config: ClientConfig = {};
  for (const [key, value] of Object.entries(kv)) {
    switch (key) {
      case 'host': case 'hostaddr': config.host = value; break;
      case 'port': config.port = Number(value); break;
      case 'user': config.user = value; break;
      case 'dbname': config.database = value; break;
      case 'password': config.password = value; break;
      case 'application_name': config.application_name = value; break;
      case 'connect_timeout': config.connectionTimeoutMillis = Number(value) * 1000; break;
      case 'sslmode': config.ssl = value === 'disable' || value === 'allow' || value === 'prefer' ? false : { rejectUnauthorized: value === 'verify-full' || value === 'verify-ca' }; break;
      default: break; // libpq-only settings (passfile, …) are for the PostgreSQL tools; pg ignores them
    }
  }
  // libpq defaults to the local socket; pg to localhost TCP. Follow libpq, as pg_basebackup will.
  if (!config.host && !process.env.PGHOST) config.host = '/var/run/postgresql';
  if (password) config.password = password;
  return config;
}

/** Add or replace keywords (e.g. application_name) in a keyword=value conninfo for PostgreSQL tools. */
export function withConninfoParams(conninfo: string, params: Record<string, string>): string {
  const quote = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (/^postgres(ql)?:\/\//.test(conninfo)) {
    const url = new URL(conninfo);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return url.toString();
  }
  const kv = { ...parseConninfo(conninfo), ...params };
  return Object.entries(kv).map(([k, v]) => `${k}=${quote(v)}`).join(' ');
}
