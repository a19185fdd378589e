import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser, createCluster, type SandboxCluster } from '@pgharbor/sandbox';
import { conninfoToConnectPlan, connectPostgres } from '@pgharbor/core';
import { pgharbor, scratchDir } from './harness.js';

/**
 * sslmode as libpq means it, against real servers: one with ssl=on (a
 * throwaway CA signs a certificate for "localhost" only) and pg_hba.conf
 * demanding TLS for postgres and plain TCP for "plainonly", and one with
 * ssl=off. Every case is tried with pgharbor's own connection
 * (node-postgres through conninfoToConnectPlan) and with psql (libpq
 * itself): both must connect the same way or both refuse.
 */

const PASSWORD = 'tls-test-password';
let dir: string;
let home: string;
let tlsCluster: SandboxCluster;
let plainCluster: SandboxCluster;
const file = (name: string) => path.join(dir, name);

async function openssl(args: string[]): Promise<void> {
  await execa('openssl', args, { stdio: 'ignore' });
}

/** A CA, a server certificate it signs (DNS:localhost only: no IP address), and an unrelated CA. */
async function makeCertificates(): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=pgharbor test CA', '-keyout', file('ca.key'), '-out', file('ca.crt')]);
  await openssl(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=some other CA', '-keyout', file('other-ca.key'), '-out', file('other-ca.crt')]);
  await openssl(['req', ...ec, '-subj', '/CN=localhost', '-keyout', file('server.key'), '-out', file('server.csr')]);
  await writeFile(file('san.ext'), 'subjectAltName=DNS:localhost\n');
  await openssl(['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file('server.crt')]);
  await chownToPgUser(file('server.key'));
  await chownToPgUser(file('server.crt'));
  await execa('chmod', ['600', file('server.key')]);
}

beforeAll(async () => {
  dir = await scratchDir('pgharbor-tls-');
  home = path.join(dir, 'home'); // no ~/.postgresql: libpq's default files are absent
  await mkdir(home);
  await makeCertificates();
  tlsCluster = await createCluster({ settings: { ssl: 'on', ssl_cert_file: file('server.crt'), ssl_key_file: file('server.key') } });
  plainCluster = await createCluster();
  for (const cluster of [tlsCluster, plainCluster]) {
    await cluster.query(`ALTER ROLE postgres PASSWORD '${PASSWORD}'`);
    await cluster.query(`CREATE ROLE plainonly LOGIN PASSWORD '${PASSWORD}'`);
  }
  await writeFile(
    path.join(tlsCluster.dataDir, 'pg_hba.conf'),
    [
      'local all all trust',
      'hostnossl all plainonly 127.0.0.1/32 scram-sha-256',
      'hostssl all postgres 127.0.0.1/32 scram-sha-256',
      'hostssl replication postgres 127.0.0.1/32 scram-sha-256',
      '',
    ].join('\n'),
  );
  await tlsCluster.query('SELECT pg_reload_conf()');
});

afterAll(async () => {
  await tlsCluster?.destroy().catch(() => {});
  await plainCluster?.destroy().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

const SSL_IN_USE = 'SELECT ssl::text AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

/** 'tls', 'plain', or the error message: through pgharbor's own connection. */
async function viaPgharbor(conninfo: string): Promise<string> {
  const saved = process.env.HOME;
  process.env.HOME = home;
  try {
    const client = await connectPostgres(conninfoToConnectPlan(conninfo, PASSWORD, { HOME: home }), 'server t');
    try {
      return (await client.query(SSL_IN_USE)).rows[0].ssl === 'true' ? 'tls' : 'plain';
    } finally {
      await client.end();
    }
  } catch (error) {
    return `refused: ${(error as Error).message}`;
  } finally {
    process.env.HOME = saved;
  }
}

/** The same through psql: libpq itself. */
async function viaLibpq(conninfo: string): Promise<string> {
  const result = await execa(path.join(tlsCluster.pgBin, 'psql'), ['-X', '-Atc', SSL_IN_USE, '-d', conninfo], {
    env: { HOME: home, PGPASSWORD: PASSWORD, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
  });
  if (result.exitCode !== 0) return `refused: ${String(result.stderr).trim()}`;
  return String(result.stdout).trim() === 'true' ? 'tls' : 'plain';
}

describe('sslmode and certificates, as libpq does them', () => {
  const tcp = (cluster: () => SandboxCluster, user = 'postgres', host = 'host=127.0.0.1') => () => `${host} port=${cluster().port} user=${user} dbname=postgres`;
  const tlsServer = tcp(() => tlsCluster);
  const byName = tcp(() => tlsCluster, 'postgres', 'host=localhost hostaddr=127.0.0.1');
  const plainOnlyUser = tcp(() => tlsCluster, 'plainonly');
  const sslOff = tcp(() => plainCluster);
  const ca = () => `sslrootcert=${file('ca.crt')}`;
  const otherCa = () => `sslrootcert=${file('other-ca.crt')}`;

  it.each<[string, () => string, () => string, 'tls' | 'plain' | RegExp]>([
    ['disable: plain, refused by hostssl', tlsServer, () => 'sslmode=disable', /no pg_hba.conf entry|SSL off/],
    ['allow: plain refused by hostssl, then TLS', tlsServer, () => 'sslmode=allow', 'tls'],
    ['allow against ssl=off: plain', sslOff, () => 'sslmode=allow', 'plain'],
    ['prefer (the default): TLS', tlsServer, () => '', 'tls'],
    ['prefer against ssl=off: falls back to plain', sslOff, () => 'sslmode=prefer', 'plain'],
    ['prefer when pg_hba.conf wants hostnossl: TLS rejected, then plain', plainOnlyUser, () => 'sslmode=prefer', 'plain'],
    ['require: TLS without verification', tlsServer, () => 'sslmode=require', 'tls'],
    ['require against ssl=off: refused', sslOff, () => 'sslmode=require', /does not support SSL/],
    ['require with an sslrootcert of another CA: verified as verify-ca, refused', tlsServer, () => `sslmode=require ${otherCa()}`, /certificate/],
    ['verify-ca with the right CA, host by IP (the name is not checked)', tlsServer, () => `sslmode=verify-ca ${ca()}`, 'tls'],
    ['verify-ca with another CA: refused', tlsServer, () => `sslmode=verify-ca ${otherCa()}`, /certificate/],
    ['verify-full, host name in the certificate', byName, () => `sslmode=verify-full ${ca()}`, 'tls'],
    ['verify-full, host 127.0.0.1 not in the certificate: refused', tlsServer, () => `sslmode=verify-full ${ca()}`, /does not match|not match/],
  ])('%s', async (_name, base, extra, expected) => {
    const conninfo = `${base()} ${extra()}`;
    const [ours, libpq] = [await viaPgharbor(conninfo), await viaLibpq(conninfo)];
    if (typeof expected === 'string') {
      expect(ours, `pgharbor: ${ours}`).toBe(expected);
      expect(libpq, `libpq: ${libpq}`).toBe(expected);
    } else {
      expect(ours).toMatch(/^refused: /);
      expect(ours).toMatch(expected);
      expect(libpq).toMatch(/^refused: /);
    }
  });

  it('the CLI: verify-full against a wrong host name fails (exit 1) naming TLS; an unknown keyword is exit 2 naming it', async () => {
    const configFile = path.join(dir, 'pgharbor.config.yaml');
    const config = (conninfo: string) =>
      writeFile(configFile, ['servers:', '  t:', `    conninfo: "${conninfo}"`, `    password: { from_env: TLS_PW }`, '    repositories:', `      - { type: posix, path: ${path.join(dir, 'repo')} }`, ''].join('\n'));
    const env = { TLS_PW: PASSWORD, HOME: home };

    await config(`${tlsServer()} sslmode=verify-full ${ca()}`);
    const wrongName = await pgharbor(['--config', configFile, 'replication-status', 't'], { env });
    expect(wrongName.exitCode).toBe(1);
    expect(wrongName.stderr).toMatch(/TLS with the server failed \(sslmode=verify-full/);
    expect(wrongName.stderr).toMatch(/HINT: .*name the host/);

    await config(`${byName()} sslmode=verify-full ${ca()}`);
    const ok = await pgharbor(['--config', configFile, 'replication-status', 't'], { env });
    expect(ok.exitCode, ok.stderr).toBe(0);

    await config(`${tlsServer()} sslmode=verify-full sslrootcrt=${file('ca.crt')}`);
    const typo = await pgharbor(['--config', configFile, 'list-backups', 't'], { env });
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr).toMatch(/servers\.t\.conninfo unknown connection option "sslrootcrt"/);
    expect(typo.stderr).toMatch(/HINT: /);

    await config(`${tlsServer()} sslmode=verify-ca sslrootcert=${path.join(dir, 'missing.crt')}`);
    const missing = await pgharbor(['--config', configFile, 'replication-status', 't'], { env });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain(`cannot read sslrootcert file "${path.join(dir, 'missing.crt')}"`);
  });
});
