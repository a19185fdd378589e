import type pg from 'pg';
import { HarborError, errorMessage } from '../errors.js';

/**
 * Connect with node-postgres and turn its errors into ones a DBA can act
 * on. `where` names the server ("server pga") for the message.
 */
export async function connectPostgres(config: pg.ClientConfig, where: string): Promise<pg.Client> {
  const { default: pgModule } = await import('pg');
  const client = new pgModule.Client({ connectionTimeoutMillis: 10_000, ...config });
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw explainConnectError(error, config, where);
  }
  client.on('error', () => {}); // a dropped connection surfaces on the next query instead of crashing
  return client;
}

function explainConnectError(error: unknown, config: pg.ClientConfig, where: string): HarborError {
  const code = (error as { code?: string }).code;
  const target = `host=${config.host ?? 'localhost'} port=${config.port ?? 5432} user=${config.user ?? process.env.PGUSER ?? 'default'}`;
  if (code === '28P01' || code === '28000') {
    return new HarborError(`${where}: authentication failed (${target}): ${errorMessage(error)}`, {
      hint: 'check the password (password: {from_env|from_file}, PGPASSWORD or ~/.pgpass) and pg_hba.conf',
    });
  }
  if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT') {
    return new HarborError(`${where}: cannot connect to PostgreSQL (${target}): ${errorMessage(error)}`, {
      hint: 'is the server running and listening there? check conninfo in the config',
    });
  }
  if (code === '3D000') return new HarborError(`${where}: ${errorMessage(error)} (${target})`, { hint: 'fix dbname in conninfo' });
  return new HarborError(`${where}: cannot connect to PostgreSQL (${target}): ${errorMessage(error)}`, { hint: 'check conninfo in the config' });
}
