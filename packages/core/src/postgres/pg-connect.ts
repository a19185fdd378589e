import type pg from 'pg';
import { HarborError, errorMessage } from '../errors.js';
import type { PgConnectPlan } from './pg-connect-plan.js';

/**
 * Connect with node-postgres as libpq would (sslmode's attempts and
 * fall-backs, see pg-connect-plan.ts) and turn its errors into ones a DBA
 * can act on. `where` names the server ("server pga") for the message.
 */
export async function connectPostgres(plan: PgConnectPlan, where: string, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const { default: pgModule } = await import('pg');
  let lastError: unknown;
  for (const [index, ssl] of plan.attempts.entries()) {
    const client = new pgModule.Client({ connectionTimeoutMillis: 10_000, ...plan.config, ...extra, ssl });
    // A dropped connection surfaces on the next query instead of crashing. Listening from before connect():
    // an ErrorResponse in the same read as the ReadyForQuery that ends the start-up (a backend terminated
    // just as it became ready) is emitted before connect()'s promise resumes us, and with no listener it
    // killed the process (seen once: the walsender terminated at the start of a backup).
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => {});
      lastError = error;
      if (index + 1 < plan.attempts.length && !retriesAfter(plan, error)) break;
    }
  }
  throw explainConnectError(lastError, plan, where);
}

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH']);

/**
 * libpq's second try: sslmode=allow retries with TLS when the server
 * answered the plain attempt with an error (pg_hba.conf wants hostssl);
 * sslmode=prefer retries in plain when TLS was refused ("N"), failed in its
 * handshake, or the server rejected the TLS session (pg_hba.conf hostnossl).
 * A host that cannot be reached is not retried.
 */
function retriesAfter(plan: PgConnectPlan, error: unknown): boolean {
  const code = (error as { code?: string }).code;
  if (code && NETWORK_ERRORS.has(code)) return false;
  if (/timeout/i.test(errorMessage(error))) return false;
  if (plan.fallback === 'to-tls-after-server-error') return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
  return plan.fallback === 'to-plain-after-tls-failure';
}

function explainConnectError(error: unknown, plan: PgConnectPlan, where: string): HarborError {
  const { config } = plan;
  const code = (error as { code?: string }).code;
  const target = `host=${config.host ?? 'localhost'} port=${config.port ?? 5432} user=${config.user ?? process.env.PGUSER ?? 'default'}`;
  const message = errorMessage(error);
  if (code === '28P01' || code === '28000') {
    return new HarborError(`${where}: authentication failed (${target}): ${message}`, {
      hint: /SSL|encryption/i.test(message)
        ? `pg_hba.conf and sslmode disagree (sslmode=${plan.sslmode}): change one of them`
        : 'check the password (password: {from_env|from_file}, PGPASSWORD or ~/.pgpass) and pg_hba.conf',
    });
  }
  if (code && NETWORK_ERRORS.has(code)) {
    return new HarborError(`${where}: cannot connect to PostgreSQL (${target}): ${message}`, {
      hint: 'is the server running and listening there? check conninfo in the config',
    });
  }
  if (/does not support SSL/.test(message)) {
    return new HarborError(`${where}: the server does not support SSL, but sslmode=${plan.sslmode} requires it (${target})`, {
      hint: 'turn ssl on in postgresql.conf, or lower sslmode in conninfo (prefer tries TLS and falls back to plain)',
    });
  }
  if (/certificate|self[- ]signed|Hostname\/IP does not match|SSL|TLS|CRL/i.test(message) || (code ?? '').startsWith('ERR_TLS') || /^(DEPTH_ZERO|UNABLE_TO|CERT_|SELF_SIGNED)/.test(code ?? '')) {
    return new HarborError(`${where}: TLS with the server failed (sslmode=${plan.sslmode}, ${target}): ${message}`, {
      hint: plan.sslmode === 'verify-full'
        ? 'the certificate must be signed by sslrootcert and name the host in conninfo (check host=, sslrootcert=)'
        : 'check sslrootcert (the CA that signed the server certificate), sslcert and sslkey in conninfo',
    });
  }
  if (code === '3D000') return new HarborError(`${where}: ${message} (${target})`, { hint: 'fix dbname in conninfo' });
  return new HarborError(`${where}: cannot connect to PostgreSQL (${target}): ${message}`, { hint: 'check conninfo in the config' });
}
