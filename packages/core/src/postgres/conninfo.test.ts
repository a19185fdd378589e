import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { redact } from '../log.js';
import { LIBPQ_KEYWORDS, formatConninfo, parseConninfo, withConninfoParams, withoutSecrets } from './conninfo.js';
import { conninfoToConnectPlan } from './pg-connect-plan.js';
import { toolConnection } from './tool-connection.js';

describe('conninfo parsing, as libpq reads it', () => {
  it.each<[string, string, Record<string, string>]>([
    ['keywords', 'host=pga user=barman dbname=postgres', { host: 'pga', user: 'barman', dbname: 'postgres' }],
    ['quotes and escapes', "application_name='my app' password='it\\'s'", { application_name: 'my app', password: "it's" }],
    ['backslash in a bare value', 'password=a\\ b', { password: 'a b' }],
    ['spaces around =', 'host = pga   port= 5433', { host: 'pga', port: '5433' }],
    ['empty quoted value', "options=''", { options: '' }],
    ['later keyword wins', 'host=a host=b', { host: 'b' }],
    ['URI', 'postgresql://barman:s%40cret@pga:5433/postgres?sslmode=verify-full&application_name=x', { user: 'barman', password: 's@cret', host: 'pga', port: '5433', dbname: 'postgres', sslmode: 'verify-full', application_name: 'x' }],
    ['URI postgres://, no user', 'postgres://pga/db', { host: 'pga', dbname: 'db' }],
    ['URI socket directory', 'postgresql://%2Fvar%2Frun%2Fpostgresql/db', { host: '/var/run/postgresql', dbname: 'db' }],
    ['URI IPv6 and port', 'postgresql://[::1]:5433', { host: '::1', port: '5433' }],
    ['URI several hosts', 'postgresql://a:1,b:2/db', { host: 'a,b', port: '1,2', dbname: 'db' }],
    ['URI host in the query', 'postgresql:///db?host=/tmp&port=5', { dbname: 'db', host: '/tmp', port: '5' }],
    ['URI ssl=true (JDBC)', 'postgresql://h/?ssl=true', { host: 'h', sslmode: 'require' }],
    ['URI certificates', 'postgresql://h?sslrootcert=%2Fetc%2Fca.pem&sslcert=c&sslkey=k&sslcrl=r', { host: 'h', sslrootcert: '/etc/ca.pem', sslcert: 'c', sslkey: 'k', sslcrl: 'r' }],
  ])('%s', (_name, input, expected) => {
    expect(parseConninfo(input)).toEqual(expected);
  });

  it.each<[string, string, RegExp, RegExp]>([
    ['unknown keyword', 'host=pga frobnicate=1', /unknown connection option "frobnicate"/, /libpq keywords/],
    ['a typo of a keyword', 'host=pga sslmdoe=require', /unknown connection option "sslmdoe"/, /did you mean "sslmode"/],
    ['unknown keyword close to a known one', 'host=pga sslrootCert=x', /"sslrootCert"/, /did you mean "sslrootcert"/],
    ['unknown URI parameter', 'postgresql://h/db?sslmod=require', /unknown connection option "sslmod"/, /did you mean "sslmode"/],
    ['missing =', 'host=pga = nonsense', /near "= nonsense"/, /keyword=value/],
    ['bare word', 'pga', /near "pga"/, /keyword=value/],
    ['unterminated quote', "password='abc", /unterminated quoted value of "password"/, /close the value/],
    ['bad percent-encoding', 'postgresql://u:%zz@h/db', /percent-encoding in the URI's password/, /%XX/],
    ['URI parameter without value', 'postgresql://h/db?sslmode', /"sslmode" has no value/, /keyword=value/],
  ])('refuses %s with exit 2 and a hint', (_name, input, message, hint) => {
    const error = catchError(() => parseConninfo(input));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(message);
    expect(error.hint).toMatch(hint);
  });

  it('knows every libpq keyword the tools accept', () => {
    for (const key of ['sslrootcert', 'sslcert', 'sslkey', 'sslcrl', 'sslcrldir', 'passfile', 'target_session_attrs', 'keepalives_idle', 'service']) expect(LIBPQ_KEYWORDS.has(key)).toBe(true);
  });

  it('round-trips through formatConninfo, quoting every value', () => {
    const params = { host: '/tmp', password: "a 'b' \\c", application_name: '' };
    expect(parseConninfo(formatConninfo(params))).toEqual(params);
    expect(withConninfoParams('host=/tmp port=5 user=postgres', { application_name: 'pgharbor' })).toBe("host='/tmp' port='5' user='postgres' application_name='pgharbor'");
  });

  it('drops every secret from a conninfo written for others (primary_conninfo)', () => {
    expect(withoutSecrets("host=h password='p w' sslpassword=k sslkey=/k", { application_name: 'a' })).toBe("host='h' sslkey='/k' application_name='a'");
    expect(withoutSecrets('postgresql://u:pw@h/db')).toBe("user='u' host='h' dbname='db'");
  });

  it('registers an inline password for redaction, whatever its quoting', () => {
    parseConninfo("host=h password='pw with spaces'");
    expect(redact("primary_conninfo = 'host=h password=''pw with spaces'''")).not.toContain('pw with spaces');
    parseConninfo('postgresql://u:uri%20secret@h/db');
    expect(redact('connecting with uri secret')).toBe('connecting with <redacted>');
  });
});

describe('tools get the conninfo without its password, and the password in their environment', () => {
  it.each<[string, string, string | undefined, string, string | undefined]>([
    ['inline password', "host=h user=u password='s3cret pw'", undefined, "host='h' user='u' application_name='x'", 's3cret pw'],
    ['configured password', 'host=h user=u', 'from-file', "host='h' user='u' application_name='x'", 'from-file'],
    ['the same password both ways', 'host=h password=same-one', 'same-one', "host='h' application_name='x'", 'same-one'],
    ['URI password', 'postgresql://u:uri-pw@h:5/db?sslmode=require', undefined, "user='u' host='h' port='5' dbname='db' sslmode='require' application_name='x'", 'uri-pw'],
    ['no password: PGPASSWORD/.pgpass as libpq has them', 'host=h', undefined, "host='h' application_name='x'", undefined],
  ])('%s', (_name, conninfo, configured, toolConninfo, envPassword) => {
    const tool = toolConnection(conninfo, configured, { application_name: 'x' }, { PATH: '/bin' });
    expect(tool.conninfo).toBe(toolConninfo);
    expect(tool.conninfo).not.toMatch(/password/);
    expect(tool.env.PGPASSWORD).toBe(envPassword);
    expect(tool.env.PATH).toBe('/bin');
  });

  it('refuses two different passwords, and secrets libpq can only take on a command line', () => {
    expect(catchError(() => toolConnection('host=h password=one1', 'two2')).message).toMatch(/differ/);
    const ssl = catchError(() => toolConnection('host=h sslkey=k sslpassword=keypass', undefined));
    expect(ssl.message).toMatch(/sslpassword cannot be given to the PostgreSQL tools/);
    expect(ssl.message).not.toContain('keypass');
  });
});

describe('sslmode and certificates for pgharbor\'s own connections', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgharbor-conninfo-'));
  const file = (name: string, mode = 0o600) => {
    const full = path.join(dir, name);
    writeFileSync(full, `${name}\n`);
    chmodSync(full, mode);
    return full;
  };
  const ca = file('ca.pem');
  const cert = file('client.crt');
  const key = file('client.key');
  const openKey = file('open.key', 0o644);
  // A HOME without ~/.postgresql: libpq's default files are absent.
  const env = { HOME: dir };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const withHome = <T>(fn: () => T): T => {
    const saved = process.env.HOME;
    process.env.HOME = dir;
    try {
      return fn();
    } finally {
      process.env.HOME = saved;
    }
  };
  const plan = (conninfo: string, extraEnv: Record<string, string> = {}) => withHome(() => conninfoToConnectPlan(conninfo, undefined, { ...env, ...extraEnv }));
  const shape = (attempt: false | { rejectUnauthorized?: boolean; ca?: unknown }) =>
    attempt === false ? 'plain' : `tls(${attempt.rejectUnauthorized ? 'chain' : 'no-verify'}${attempt.ca ? '+ca' : ''})`;

  it.each<[string, string, string[], string | undefined]>([
    ['default is prefer', 'host=h', ['tls(no-verify)', 'plain'], 'to-plain-after-tls-failure'],
    ['disable', 'host=h sslmode=disable', ['plain'], undefined],
    ['allow: plain first, then TLS', 'host=h sslmode=allow', ['plain', 'tls(no-verify)'], 'to-tls-after-server-error'],
    ['prefer: TLS first, then plain', 'host=h sslmode=prefer', ['tls(no-verify)', 'plain'], 'to-plain-after-tls-failure'],
    ['require: TLS, no verification', 'host=h sslmode=require', ['tls(no-verify)'], undefined],
    ['require with a root certificate is verify-ca', `host=h sslmode=require sslrootcert=${ca}`, ['tls(chain+ca)'], undefined],
    ['verify-ca', `host=h sslmode=verify-ca sslrootcert=${ca}`, ['tls(chain+ca)'], undefined],
    ['verify-full', `host=h sslmode=verify-full sslrootcert=${ca}`, ['tls(chain+ca)'], undefined],
    ['requiressl=1 (old spelling of require)', 'host=h requiressl=1', ['tls(no-verify)'], undefined],
    ['a Unix socket never uses TLS', 'host=/var/run/postgresql sslmode=require', ['plain'], undefined],
    ['URI parameters', `postgresql://h/db?sslmode=verify-ca&sslrootcert=${encodeURIComponent(ca)}`, ['tls(chain+ca)'], undefined],
  ])('%s', (_name, conninfo, attempts, fallback) => {
    const result = plan(conninfo);
    expect(result.attempts.map(shape)).toEqual(attempts);
    expect(result.fallback).toBe(fallback);
  });

  it('reads PGSSLMODE and PGSSLROOTCERT as libpq does', () => {
    expect(plan('host=h', { PGSSLMODE: 'verify-ca', PGSSLROOTCERT: ca }).attempts.map(shape)).toEqual(['tls(chain+ca)']);
  });

  it('verify-full checks the host name, verify-ca does not', () => {
    const full = plan(`host=db.example sslmode=verify-full sslrootcert=${ca}`).attempts[0] as { checkServerIdentity: (h: string, c: unknown) => Error | undefined };
    const caOnly = plan(`host=db.example sslmode=verify-ca sslrootcert=${ca}`).attempts[0] as { checkServerIdentity: (h: string, c: unknown) => Error | undefined };
    const certFor = (name: string) => ({ subject: { CN: name }, subjectaltname: `DNS:${name}` });
    expect(full.checkServerIdentity('db.example', certFor('other.example'))).toBeInstanceOf(Error);
    expect(full.checkServerIdentity('db.example', certFor('db.example'))).toBeUndefined();
    expect(caOnly.checkServerIdentity('db.example', certFor('other.example'))).toBeUndefined();
  });

  it('loads the client certificate, key and CRL', () => {
    const crl = file('root.crl');
    const tls = plan(`host=h sslmode=verify-ca sslrootcert=${ca} sslcert=${cert} sslkey=${key} sslcrl=${crl}`).attempts[0] as Record<string, unknown>;
    expect(String(tls.cert)).toBe('client.crt\n');
    expect(String(tls.key)).toBe('client.key\n');
    expect((tls.crl as Buffer[]).map(String)).toEqual(['root.crl\n']);
  });

  it('takes ~/.postgresql/root.crt when it exists', () => {
    const home = mkdtempSync(path.join(dir, 'home-'));
    const pgdir = path.join(home, '.postgresql');
    mkdirSync(pgdir);
    writeFileSync(path.join(pgdir, 'root.crt'), 'default-root\n');
    const saved = process.env.HOME;
    process.env.HOME = home;
    try {
      const tls = conninfoToConnectPlan('host=h sslmode=require', undefined, {}).attempts[0] as { ca: Buffer; rejectUnauthorized: boolean };
      expect(String(tls.ca)).toBe('default-root\n');
      expect(tls.rejectUnauthorized).toBe(true);
    } finally {
      process.env.HOME = saved;
    }
  });

  it.each<[string, string, RegExp, RegExp]>([
    ['verify-ca without a root certificate', 'host=h sslmode=verify-ca', /root certificate file ".*root\.crt" does not exist/, /sslrootcert=FILE/],
    ['an unreadable sslrootcert', 'host=h sslmode=require sslrootcert=/nonexistent/ca.pem', /cannot read sslrootcert file "\/nonexistent\/ca.pem"/, /fix sslrootcert/],
    ['an unreadable sslcert', 'host=h sslcert=/nonexistent/c.crt', /cannot read sslcert file "\/nonexistent\/c.crt"/, /fix sslcert/],
    ['an unreadable sslkey', `host=h sslcert=${cert} sslkey=/nonexistent/k.key`, /cannot read sslkey file "\/nonexistent\/k.key"/, /fix sslkey/],
    ['an unreadable sslcrl', `host=h sslmode=verify-ca sslrootcert=${ca} sslcrl=/nonexistent/r.crl`, /cannot read sslcrl file/, /fix sslcrl/],
    ['a key others can read', `host=h sslcert=${cert} sslkey=${openKey}`, /has group or world access/, /chmod 600/],
    ['an invalid sslmode', 'host=h sslmode=verify', /invalid sslmode "verify"/, /verify-full/],
    ['sslrootcert=system without verify-full', 'host=h sslmode=require sslrootcert=system', /weak sslmode "require"/, /verify-full/],
    ['requirepeer (node-postgres cannot check the peer)', 'host=/tmp requirepeer=postgres', /requirepeer=postgres cannot be honoured/, /pg_hba/],
    ['channel_binding=require', 'host=h channel_binding=require', /channel_binding=require cannot be honoured/, /pg_hba/],
    ['several hosts', 'host=a,b', /several hosts/, /one host/],
  ])('refuses %s (exit 2, naming the keyword)', (_name, conninfo, message, hint) => {
    const error = catchError(() => plan(conninfo));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(message);
    expect(error.hint).toMatch(hint);
  });

  it('passes settings node-postgres has no knob for to the tools only, without failing', () => {
    for (const key of LIBPQ_KEYWORDS) {
      const value = { port: '5432', sslmode: 'prefer', sslnegotiation: 'postgres', ssl_min_protocol_version: 'TLSv1.2', ssl_max_protocol_version: 'TLSv1.3', channel_binding: 'prefer', gssencmode: 'prefer', sslcertmode: 'allow' }[key] ?? '1';
      if (['service', 'requirepeer', 'require_auth', 'sslrootcert', 'sslcert', 'sslkey', 'sslcrl', 'sslcrldir', 'host', 'hostaddr', 'password', 'sslpassword'].includes(key)) continue;
      expect(() => plan(`host=h ${key}=${value}`), key).not.toThrow();
    }
  });
});

function catchError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error('expected an error');
}

describe('passfile, for pgharbor\'s own connection', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgharbor-passfile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const passfile = path.join(dir, 'pgpass');
  writeFileSync(passfile, ['# comment', 'other:5432:*:barman:not-this', 'pga:5433:*:barman:with\\:colon', '*:*:*:streaming:any-host', 'localhost:5432:postgres:postgres:socket-pw', ''].join('\n'), { mode: 0o600 });
  const open = path.join(dir, 'open-pgpass');
  writeFileSync(open, '*:*:*:*:readable-by-all\n', { mode: 0o644 });

  it.each<[string, string, Record<string, string>, string | undefined]>([
    ['host, port and user match; escaped colon', `host=pga port=5433 user=barman passfile=${passfile}`, {}, 'with:colon'],
    ['wildcards', `host=x user=streaming passfile=${passfile}`, {}, 'any-host'],
    ['a Unix socket is "localhost"', `host=/var/run/postgresql user=postgres dbname=postgres passfile=${passfile}`, {}, 'socket-pw'],
    ['no line matches', `host=pga port=5432 user=nobody passfile=${passfile}`, {}, undefined],
    ['PGPASSWORD wins over passfile, as in libpq', `host=pga port=5433 user=barman passfile=${passfile}`, { PGPASSWORD: 'env-pw' }, undefined],
    ['a file others can read is ignored, as libpq does', `host=pga user=barman passfile=${open}`, {}, undefined],
    ['a missing file is no password', `host=pga user=barman passfile=${path.join(dir, 'absent')}`, {}, undefined],
  ])('%s', (_name, conninfo, env, expected) => {
    expect(conninfoToConnectPlan(conninfo, undefined, { HOME: dir, ...env }).config.password).toBe(expected);
  });
});

describe('service, from the service file as libpq finds it', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgharbor-service-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const userFile = path.join(dir, 'user.conf');
  writeFileSync(userFile, ['# mine', '[pga]', 'host=pga.example', 'port=5433', 'sslmode=verify-ca', `sslrootcert=${userFile}`, '[other]', 'host=elsewhere', ''].join('\n'));
  const sysDir = path.join(dir, 'etc');
  mkdirSync(sysDir);
  writeFileSync(path.join(sysDir, 'pg_service.conf'), ['[sys]', 'host=sys.example', 'user=barman', '[bad]', 'hots=x', ''].join('\n'));
  const env = { PGSERVICEFILE: userFile, PGSYSCONFDIR: sysDir, HOME: dir };

  it.each<[string, string, Record<string, unknown>]>([
    ['settings from the user file', 'service=pga', { host: 'pga.example', port: 5433 }],
    ['the conninfo wins over the service', 'service=pga port=6000 user=me', { host: 'pga.example', port: 6000, user: 'me' }],
    ['then the system file', 'service=sys', { host: 'sys.example', user: 'barman' }],
  ])('%s', (_name, conninfo, expected) => {
    expect(conninfoToConnectPlan(conninfo, undefined, env).config).toMatchObject(expected);
  });

  it('a service\'s sslmode applies (verify-ca with its root certificate)', () => {
    expect(conninfoToConnectPlan('service=pga', undefined, env).attempts.length).toBe(1);
  });

  it.each<[string, string, RegExp]>([
    ['an unknown service', 'service=nope', /definition of service "nope" not found/],
    ['an unknown keyword in the file', 'service=bad', /syntax error in service file .* line 5: unknown keyword "hots"/],
  ])('refuses %s', (_name, conninfo, message) => {
    const error = catchError(() => conninfoToConnectPlan(conninfo, undefined, env));
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(message);
  });
});

describe('redaction of connection strings in logs and messages', () => {
  it.each<[string, string, string]>([
    ['bare', 'host=h password=hunter2x user=u', 'host=h password=<redacted> user=u'],
    ['quoted with spaces', "host=h password = 'a b c' user=u", 'host=h password = <redacted> user=u'],
    ['sslpassword', 'sslkey=k sslpassword=keypass1', 'sslkey=k sslpassword=<redacted>'],
    ['URI user:password@', 'postgresql://u:pw%40x@h/db', 'postgresql://u:<redacted>@h/db'],
  ])('%s', (_name, text, expected) => {
    expect(redact(text)).toBe(expected);
  });
});
