import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Delivery {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown> & { event: string };
}

/**
 * A webhook receiver on loopback, as a DBA's alerting endpoint would be:
 * it records every POST. `behave` makes it slow, failing or silent.
 */
export interface Receiver {
  url: string;
  deliveries: Delivery[];
  /** Deliveries to one path ("/pg"), in arrival order. */
  at(path: string): Delivery[];
  /** Per request: answer after `delayMs` (Infinity: never) with `status`. */
  behave: (path: string) => { delayMs?: number; status?: number };
  /** Wait until `predicate` holds (polls), or fail after `ms`. */
  waitFor(predicate: () => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const hanging = new Set<http.ServerResponse>();
  const receiver: Receiver = {
    url: '',
    deliveries,
    at: (path) => deliveries.filter((d) => d.path === path),
    behave: () => ({}),
    async waitFor(predicate, ms = 20_000) {
      const until = Date.now() + ms;
      while (!predicate()) {
        if (Date.now() > until) throw new Error(`receiver: condition not met within ${ms} ms; got ${deliveries.map((d) => `${d.path} ${d.json.event}`).join(', ')}`);
        await sleep(50);
      }
    },
    close: () =>
      new Promise((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const { delayMs = 0, status = 200 } = receiver.behave(req.url ?? '');
      let gone = false;
      res.on('close', () => (gone = !res.writableFinished));
      const answer = () => {
        hanging.delete(res);
        // Recorded when acknowledged: a delivery the sender gave up on before the answer was not received.
        if (status < 300 && !gone) deliveries.push({ path: req.url ?? '', headers: req.headers, body, json: JSON.parse(body) });
        res.statusCode = status;
        res.end();
      };
      hanging.add(res);
      if (delayMs !== Infinity) setTimeout(answer, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}

/** What a receiver does to authenticate a delivery: X-Pgharbor-Signature is HMAC-SHA256 of the body. */
export function signatureValid(delivery: Delivery, key: string): boolean {
  const header = String(delivery.headers['x-pgharbor-signature'] ?? '');
  const expected = Buffer.from(`sha256=${createHmac('sha256', key).update(delivery.body).digest('hex')}`);
  return header.length === expected.length && timingSafeEqual(Buffer.from(header), expected);
}
