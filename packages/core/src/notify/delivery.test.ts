import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deliver } from './delivery.js';
import { createEvent } from './events.js';
import { Spool } from './spool.js';
import { PermanentDeliveryError, type Notifier } from '../notifier.js';

const event = () => createEvent('backup.failed', { server: 'pga', error: { message: 'boom' } });

/** A target that fails `failures` times, then succeeds; records each attempt. */
function flaky(failures: number, error: () => Error = () => new Error('HTTP 503')): Notifier & { attempts: number } {
  const target = {
    attempts: 0,
    async send() {
      target.attempts++;
      if (target.attempts <= failures) throw error();
    },
  };
  return target;
}

describe('deliver', () => {
  it('retries a failing target with backoff until it succeeds', async () => {
    const target = flaky(1);
    const started = Date.now();
    const outcome = await deliver(target, event(), { timeoutMs: 1000, retries: 2 });
    expect(outcome).toMatchObject({ ok: true, attempts: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950); // 1 s backoff
  });

  it('gives up after its retries, with the last error', async () => {
    const outcome = await deliver(flaky(5), event(), { timeoutMs: 1000, retries: 0 });
    expect(outcome).toMatchObject({ ok: false, attempts: 1, error: 'HTTP 503' });
  });

  it('does not retry a permanent failure', async () => {
    const target = flaky(5, () => new PermanentDeliveryError('HTTP 400'));
    expect(await deliver(target, event(), { timeoutMs: 1000, retries: 3 })).toMatchObject({ ok: false, attempts: 1, error: 'HTTP 400' });
  });

  it('cuts an attempt at its timeout, even when the target ignores the signal', async () => {
    const hanging: Notifier = { send: () => new Promise(() => {}) };
    const started = Date.now();
    const outcome = await deliver(hanging, event(), { timeoutMs: 200, retries: 0 });
    expect(outcome).toMatchObject({ ok: false, attempts: 1, error: 'timed out after 0.2 s' });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('starts nothing after the deadline: archive-push gives delivery a fixed budget', async () => {
    const started = Date.now();
    const outcome = await deliver(flaky(9), event(), { timeoutMs: 10_000, retries: 5, deadline: Date.now() + 300 });
    expect(outcome.ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(400); // the 1 s backoff would overrun the deadline: no retry
  });

  it('hands the target a signal that aborts at the timeout', async () => {
    let aborted = false;
    const polite: Notifier = {
      send: (_e, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(signal.reason)))),
    };
    await deliver(polite, event(), { timeoutMs: 100, retries: 0 });
    expect(aborted).toBe(true);
  });
});

describe('spool', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pgharbor-spool-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps what is pending for a flush, drops what was delivered, and lets one flusher claim each entry', async () => {
    const spool = new Spool(dir);
    const delivered = spool.add({ event: event(), pending: ['a'], rounds: 0 });
    const failed = spool.add({ event: event(), pending: ['a', 'b'], rounds: 0 });
    expect(spool.claim()).toEqual([]); // in flight: their owner delivers them
    spool.settle(delivered, { event: event(), pending: [], rounds: 1 });
    spool.settle(failed, { event: event(), pending: ['b'], rounds: 1, lastError: 'b: down' });
    expect(await readdir(dir)).toEqual([expect.stringMatching(/\.json$/)]);
    const first = spool.claim();
    expect(first).toHaveLength(1);
    expect(first[0].entry).toMatchObject({ pending: ['b'], rounds: 1 });
    expect(spool.claim()).toEqual([]); // claimed already
    spool.settle(first[0].file, { ...first[0].entry, pending: [] });
    expect(spool.backlog()).toEqual({ count: 0 });
  });

  it('takes over an entry whose owner died while delivering it', async () => {
    const spool = new Spool(dir);
    const orphan = spool.add({ event: event(), pending: ['a'], rounds: 0 });
    const old = new Date(Date.now() - 3600_000);
    await utimes(orphan, old, old);
    expect(spool.claim()).toHaveLength(1);
  });
});
