import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { createEvent, deliver, silentLogger, type NotifierContext } from '@pgharbor/core';
import { createEmailNotifier, type EmailOptions } from './email-notifier.js';

interface Mail {
  raw: string;
  from?: string;
  to: string[];
  user?: string;
  secure: boolean;
}

/** A real SMTP server on loopback: STARTTLS with a throwaway certificate, AUTH required. */
async function startSmtp(options: { withoutStartTls?: boolean; key: string; cert: string }) {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    key: options.key,
    cert: options.cert,
    disabledCommands: options.withoutStartTls ? ['STARTTLS'] : [],
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: Boolean(options.withoutStartTls),
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === 'pgharbor' && auth.password === 'smtp-pa55word') callback(null, { user: auth.username });
      else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onData(stream, session: SMTPServerSession, callback) {
      let raw = '';
      stream.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
      stream.on('end', () => {
        mails.push({ raw, from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined, to: session.envelope.rcptTo.map((r) => r.address), user: session.user as string, secure: session.secure });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { mails, port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Headers unfolded and the quoted-printable body decoded: what a mail reader shows. */
function readMail(raw: string): { subject: string; body: string } {
  const [head, ...rest] = raw.split('\r\n\r\n');
  const subject = /^Subject: (.*)$/m.exec(head.replace(/\r\n[ \t]+/g, ' '))?.[1] ?? '';
  let body = rest.join('\r\n\r\n');
  if (/Content-Transfer-Encoding: quoted-printable/i.test(head)) {
    body = Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
  }
  return { subject, body: body.replace(/\r\n/g, '\n') };
}

let dir: string;
let key: string;
let cert: string;
const context: NotifierContext = {
  logger: silentLogger,
  configDir: '/',
  secret: (ref) => process.env[(ref as { from_env: string }).from_env]!,
  childEnv: () => ({}),
};

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pgharbor-smtp-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  key = readFileSync(path.join(dir, 'key.pem'), 'utf8');
  cert = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
  process.env.PGH_SMTP_PASSWORD = 'smtp-pa55word';
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const options = (port: number, extra: Partial<EmailOptions> = {}): EmailOptions => ({
  host: '127.0.0.1',
  port,
  user: 'pgharbor',
  password: { from_env: 'PGH_SMTP_PASSWORD' },
  from: 'pgharbor@db1.example',
  to: ['dba@example.com', 'oncall@example.com'],
  ca_file: path.join(dir, 'cert.pem'),
  ...extra,
});

describe('email notifier', () => {
  it('mails the event over STARTTLS with authentication, with a subject and body a DBA can act on', async () => {
    const smtp = await startSmtp({ key, cert });
    try {
      const event = createEvent('backup.failed', {
        server: 'pga',
        backupId: '20261125T030000',
        repository: '/var/lib/pgharbor',
        error: { message: 'server pga: cannot connect to PostgreSQL', hint: 'is the server running?' },
      });
      const notifier = createEmailNotifier(options(smtp.port), context);
      expect(await notifier.check!(AbortSignal.timeout(5000))).toMatchObject({ ok: true });
      await notifier.send(event, AbortSignal.timeout(10_000));
      expect(smtp.mails).toHaveLength(1);
      const [mail] = smtp.mails;
      expect(mail).toMatchObject({ secure: true, user: 'pgharbor', from: 'pgharbor@db1.example', to: ['dba@example.com', 'oncall@example.com'] });
      const { subject, body } = readMail(mail.raw);
      expect(subject).toBe('[pgharbor] pga: backup FAILED 20261125T030000');
      expect(body).toContain('backup 20261125T030000 of pga FAILED: server pga: cannot connect to PostgreSQL');
      expect(body).toMatch(/^Repository: +\/var\/lib\/pgharbor$/m);
      expect(body).toContain('\nERROR: server pga: cannot connect to PostgreSQL\nHINT: is the server running?\n');
      expect(mail.raw).toContain(`X-Pgharbor-Delivery: ${event.id}`);
      expect(mail.raw).not.toContain('smtp-pa55word');
    } finally {
      await smtp.close();
    }
  });

  it('a wrong password is a permanent failure: not retried', async () => {
    process.env.PGH_SMTP_WRONG = 'not-the-password';
    const smtp = await startSmtp({ key, cert });
    try {
      const notifier = createEmailNotifier(options(smtp.port, { password: { from_env: 'PGH_SMTP_WRONG' } }), context);
      const outcome = await deliver(notifier, createEvent('check.failed', { server: 'pga', checks: [] }), { timeoutMs: 5000, retries: 3 });
      expect(outcome).toMatchObject({ ok: false, attempts: 1, error: expect.stringMatching(/Invalid username or password/) });
      expect(smtp.mails).toHaveLength(0);
    } finally {
      await smtp.close();
    }
  });

  it('refuses to authenticate in clear text when the server offers no STARTTLS', async () => {
    const smtp = await startSmtp({ key, cert, withoutStartTls: true });
    try {
      const notifier = createEmailNotifier(options(smtp.port), context);
      const outcome = await deliver(notifier, createEvent('check.failed', { server: 'pga', checks: [] }), { timeoutMs: 5000, retries: 0 });
      expect(outcome).toMatchObject({ ok: false, error: expect.stringMatching(/STARTTLS/i) });
      expect(smtp.mails).toHaveLength(0);
    } finally {
      await smtp.close();
    }
  });
});
