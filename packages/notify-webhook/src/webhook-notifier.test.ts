import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvent, deliver, silentLogger, type NotifierContext } from '@pgharbor/core';
import { createWebhookNotifier } from './webhook-notifier.js';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A receiver on loopback; `reply` decides each answer. */
let reply: (res: http.ServerResponse, n: number) => void = (res) => res.end('ok');
const received: Received[] = [];
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      reply(res, received.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const context: NotifierContext = {
  logger: silentLogger,
  configDir: '/',
  secret: (ref) => process.env[(ref as { from_env: string }).from_env]!,
  childEnv: () => ({}),
};
const event = () => createEvent('backup.succeeded', { server: 'pga', backupId: '20261125T100000', size: 42 });

/** What a receiver does to authenticate a delivery. */
function verify(body: string, header: string | undefined, key: string): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', key).update(body).digest('hex')}`);
  return header !== undefined && header.length === expected.length && timingSafeEqual(Buffer.from(header), expected);
}

describe('webhook notifier', () => {
  it('POSTs the event as JSON with its headers and a signature the receiver can verify', async () => {
    process.env.PGH_WEBHOOK_KEY = 'k3y-for-hmac';
    process.env.PGH_WEBHOOK_TOKEN = 'Bearer t0ken';
    received.length = 0;
    const notifier = createWebhookNotifier(
      { url: `${base}/hooks/pg`, secret: { from_env: 'PGH_WEBHOOK_KEY' }, headers: { 'X-Team': 'dba', Authorization: { from_env: 'PGH_WEBHOOK_TOKEN' } } },
      context,
    );
    const sent = event();
    await notifier.send(sent, AbortSignal.timeout(5000));
    const [got] = received;
    expect(JSON.parse(got.body)).toEqual(sent);
    expect(got.headers).toMatchObject({
      'content-type': 'application/json',
      'x-pgharbor-event': 'backup.succeeded',
      'x-pgharbor-delivery': sent.id,
      'x-team': 'dba',
      authorization: 'Bearer t0ken',
    });
    expect(verify(got.body, got.headers['x-pgharbor-signature'] as string, 'k3y-for-hmac')).toBe(true);
    expect(verify(got.body, got.headers['x-pgharbor-signature'] as string, 'another key')).toBe(false);
    expect(got.body).not.toContain('k3y-for-hmac');
  });

  it('retries a 503 and succeeds; a 400 is not retried', async () => {
    received.length = 0;
    reply = (res, n) => {
      res.statusCode = n === 1 ? 503 : 200;
      res.end();
    };
    const notifier = createWebhookNotifier({ url: base }, context);
    expect(await deliver(notifier, event(), { timeoutMs: 2000, retries: 2 })).toMatchObject({ ok: true, attempts: 2 });
    received.length = 0;
    reply = (res) => {
      res.statusCode = 400;
      res.end();
    };
    expect(await deliver(notifier, event(), { timeoutMs: 2000, retries: 2 })).toMatchObject({ ok: false, attempts: 1, error: `POST ${base}: HTTP 400 Bad Request` });
  });

  it('gives up on a receiver that does not answer, at the timeout', async () => {
    reply = () => {}; // never answers
    const started = Date.now();
    const outcome = await deliver(createWebhookNotifier({ url: `${base}/secret-path-token` }, context), event(), { timeoutMs: 300, retries: 0 });
    expect(outcome).toMatchObject({ ok: false, error: expect.stringMatching(/timed out/) });
    expect(outcome.error).not.toContain('secret-path-token'); // the URL path of a chat webhook is its credential
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('reports a refused connection', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const outcome = await deliver(createWebhookNotifier({ url: `http://127.0.0.1:${port}/` }, context), event(), { timeoutMs: 1000, retries: 0 });
    expect(outcome).toMatchObject({ ok: false, error: `POST http://127.0.0.1:${port}: ECONNREFUSED` });
  });
});
