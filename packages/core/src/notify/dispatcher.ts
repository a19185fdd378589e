import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Harbor } from '../harbor.js';
import { HarborError, errorMessage } from '../errors.js';
import { acquireLocalLock, localLockHolder } from '../lock/local-lock-store.js';
import { resolveSecret } from '../config/secrets.js';
import type { CheckContext } from '../check/check-context.js';
import type { Notifier, NotifierContext } from '../notifier.js';
import { childEnv } from './child-env.js';
import { deliver, type DeliveryOutcome, type DeliveryPolicy } from './delivery.js';
import { createEvent, eventError, type EventFields, type EventName, type HarborEvent } from './events.js';
import { FailureStateFile, onFailure } from './failure-state.js';
import {
  COMMON_TARGET_KEYS,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_SECONDS,
  sampleEventFor,
  targetName,
  targetWants,
  type NotificationTargetConfig,
} from './notification-target.js';
import { sampleEventFields } from './sample-event.js';
import { Spool, type SpoolEntry } from './spool.js';

/**
 * How long archive-push may spend delivering, in all: PostgreSQL waits for
 * archive_command, and a slow webhook must not hold up WAL archiving. What
 * is not delivered by then stays in the spool and a detached flusher
 * delivers it with the targets' full timeouts and retries.
 */
export const ARCHIVE_PUSH_BUDGET_MS = 2000;

/** A spooled event older than this is dropped (with a warning): the alert is stale, and reminders follow anyway. */
export const SPOOL_MAX_AGE_MS = 24 * 60 * 60_000;

/**
 * inline: deliver now with each target's timeout and retries (backup,
 * restore, check, receive-wal). archive: PostgreSQL is waiting; one
 * attempt per target within ARCHIVE_PUSH_BUDGET_MS, then hand over.
 */
export type DeliveryMode = 'inline' | 'archive';

interface Target {
  name: string;
  config: NotificationTargetConfig;
  notifier?: Notifier;
  /** Why the notifier could not be created (a missing secret, a bad option). */
  broken?: string;
}

export interface TargetOutcome extends DeliveryOutcome {
  target: string;
  type: string;
  event: EventName;
}

export interface FlushReport {
  delivered: number;
  pending: number;
  dropped: number;
}

const TAP = { name: 'pgharbor-notifications', stage: 100 };

/**
 * Raises the notification events from the core's lifecycle hooks and
 * delivers them to the targets of `notifications:`. Delivery never throws
 * into the operation that raised the event: a failure is a warning, and
 * the event stays in the spool until a flush delivers it.
 */
export class NotificationDispatcher {
  private live?: Target[];
  /** Deliveries that the operation does not wait for (backup.started); `settle` waits for them. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly harbor: Harbor,
    tap = true,
  ) {
    if (tap) this.tapHooks();
  }

  /** The targets of the config, each with its notifier (created once, on first use). */
  targets(): Target[] {
    if (this.live) return this.live;
    const configured = this.configured();
    this.live = configured.map((config, index) => this.createTarget(config, index));
    return this.live;
  }

  get spool(): Spool {
    return new Spool(path.join(this.harbor.stateDir(), 'spool'));
  }

  /** Raise an event: spool it, deliver it to every target that wants it, keep what failed. Never throws. */
  async raise(name: EventName, fields: EventFields, mode: DeliveryMode = 'inline'): Promise<void> {
    try {
      const wanted = this.targets().filter((t) => targetWants(t.config, name, fields.server));
      if (wanted.length === 0) return;
      await this.dispatch(createEvent(name, fields), wanted, mode);
    } catch (error) {
      this.harbor.logger.warn(`notification ${name} for ${fields.server} not sent: ${errorMessage(error)}`);
    }
  }

  /** Wait for deliveries still under way (called by `harbor.close()`). */
  async settle(): Promise<void> {
    await Promise.all(this.inFlight);
  }

  /**
   * Deliver every spooled event that is waiting (or whose owner died), each
   * to the targets it still lacks, with their full timeouts and retries.
   * Run by the detached flusher and by `cron`.
   */
  async flush(now = Date.now()): Promise<FlushReport> {
    const report: FlushReport = { delivered: 0, pending: 0, dropped: 0 };
    const spool = this.spool;
    const byName = new Map(this.targets().map((t) => [t.name, t]));
    for (const { file, entry } of spool.claim(now)) {
      const targets = entry.pending.flatMap((name) => byName.get(name) ?? []);
      if (now - Date.parse(entry.event.time) > SPOOL_MAX_AGE_MS || targets.length === 0) {
        this.harbor.logger.warn(`dropping undelivered notification ${entry.event.event} of ${entry.event.time} (${entry.event.summary}): ${targets.length ? 'too old' : 'its targets are gone from the config'}`);
        spool.settle(file, { ...entry, pending: [] });
        report.dropped++;
        continue;
      }
      const outcomes = await Promise.all(targets.map((t) => this.deliverTo(t, entry.event, this.policy(t.config))));
      const next = this.afterDelivery(entry, targets, outcomes);
      spool.settle(file, next);
      report.delivered += targets.length - next.pending.length;
      report.pending += next.pending.length;
    }
    return report;
  }

  /**
   * `pgharbor notify-test`: a sample event to every target of `server` (that
   * wants `event`, when given), delivered now with the targets' own timeouts
   * and retries, never spooled.
   */
  async test(server: string, event?: EventName): Promise<TargetOutcome[]> {
    const serverConfig = this.harbor.server(server).config;
    const chosen = this.targets().filter((t) => (event ? targetWants(t.config, event, server) : !t.config.servers || t.config.servers.includes(server)));
    return Promise.all(
      chosen.map(async (t) => {
        const name = event ?? sampleEventFor(t.config);
        const sample = createEvent(name, { ...sampleEventFields(name, server, serverConfig.method), test: true });
        return { target: t.name, type: t.config.type, event: name, ...(await this.deliverTo(t, sample, this.policy(t.config))) };
      }),
    );
  }

  private async dispatch(event: HarborEvent, targets: Target[], mode: DeliveryMode): Promise<void> {
    const spool = this.spool;
    let file: string | undefined;
    const entry: SpoolEntry = { event, pending: targets.map((t) => t.name), rounds: 0 };
    try {
      file = spool.add(entry);
    } catch (error) {
      this.harbor.logger.warn(`cannot spool notifications in ${spool.dir} (${errorMessage(error)}): delivering without a second chance`);
    }
    const deadline = mode === 'archive' ? Date.now() + ARCHIVE_PUSH_BUDGET_MS : undefined;
    const outcomes = await Promise.all(
      targets.map((t) => this.deliverTo(t, event, mode === 'archive' ? { ...this.policy(t.config), retries: 0, deadline } : this.policy(t.config))),
    );
    const next = this.afterDelivery(entry, targets, outcomes);
    if (!file) return;
    spool.settle(file, next);
    if (next.pending.length > 0) this.startFlusher();
  }

  private afterDelivery(entry: SpoolEntry, targets: Target[], outcomes: DeliveryOutcome[]): SpoolEntry {
    const failed = targets.flatMap((t, i) => (outcomes[i].ok ? [] : [{ target: t, outcome: outcomes[i] }]));
    for (const { target, outcome } of failed) {
      this.harbor.logger.warn(
        `notification ${entry.event.event} to ${target.name} (${target.config.type}) failed after ${outcome.attempts} attempt(s): ${outcome.error}; kept for a later delivery`,
      );
    }
    return {
      event: entry.event,
      pending: failed.map((f) => f.target.name),
      rounds: entry.rounds + 1,
      ...(failed.length ? { lastError: failed.map((f) => `${f.target.name}: ${f.outcome.error}`).join('; ') } : {}),
    };
  }

  private deliverTo(target: Target, event: HarborEvent, policy: DeliveryPolicy): Promise<DeliveryOutcome> {
    if (!target.notifier) return Promise.resolve({ ok: false, attempts: 0, ms: 0, error: target.broken });
    return deliver(target.notifier, event, policy);
  }

  private policy(config: NotificationTargetConfig): DeliveryPolicy {
    return { timeoutMs: (config.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000, retries: config.retries ?? DEFAULT_RETRIES };
  }

  private configured(): NotificationTargetConfig[] {
    try {
      return this.harbor.config.config.notifications ?? [];
    } catch {
      return []; // no config loaded (a bare Harbor in a test)
    }
  }

  private createTarget(config: NotificationTargetConfig, index: number): Target {
    const name = targetName(config, index);
    try {
      const factory = this.harbor.notifiers.get(config.type);
      const { dir, config: whole } = this.harbor.config;
      const options = Object.fromEntries(Object.entries(config).filter(([key]) => !(COMMON_TARGET_KEYS as readonly string[]).includes(key)));
      // Paths marked "format: path" are relative to the config file, as for repositories.
      for (const [key, prop] of Object.entries(factory.schema.properties)) {
        const value = options[key];
        if (prop.format === 'path' && typeof value === 'string') options[key] = path.resolve(dir, value);
      }
      const context: NotifierContext = {
        logger: this.harbor.logger,
        configDir: dir,
        secret: (ref, option) => resolveSecret(ref, `notifications[${index}].${option}`, dir),
        childEnv: () => childEnv(whole),
      };
      return { name, config, notifier: factory.create(options, context) };
    } catch (error) {
      return { name, config, broken: errorMessage(error) };
    }
  }

  /**
   * Hand the spool to a detached process (PostgreSQL must not wait for it),
   * unless one is already running. It outlives this process.
   */
  private startFlusher(): void {
    if (flusherRunning(this.spool.dir)) return;
    try {
      const script = fileURLToPath(new URL('./spool-flusher.js', import.meta.url));
      // Loaded here only: node:child_process costs archive-push, which runs once per segment, several ms.
      const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
      const child = spawn(process.execPath, [script, this.harbor.config.filepath], { detached: true, stdio: 'ignore' });
      child.on('error', () => {});
      child.unref();
    } catch (error) {
      this.harbor.logger.warn(`cannot start the notification flusher: ${errorMessage(error)}; run pgharbor cron to deliver`);
    }
  }

  private tapHooks(): void {
    const hooks = this.harbor.hooks;
    const raise = this.raise.bind(this);
    const timing = (start: string, stop?: string) => ({
      startTime: start,
      endTime: stop,
      seconds: stop ? (Date.parse(stop) - Date.parse(start)) / 1000 : undefined,
    });

    // The copy need not wait for "started" to be delivered; close() waits for it.
    hooks.backup.started.tapPromise(TAP, async (e, manifest) => {
      const delivery = raise('backup.started', { server: e.server, backupId: e.backupId, method: e.method, repository: e.repository, label: manifest.label, startTime: manifest.startTime });
      this.inFlight.add(delivery);
      void delivery.finally(() => this.inFlight.delete(delivery));
    });
    // Terminal events wait for "started", so that receivers get them in order.
    hooks.backup.after.tapPromise(TAP, async (e, m) => {
      await this.settle();
      await raise('backup.succeeded', {
        server: e.server,
        backupId: e.backupId,
        method: e.method,
        repository: e.repository,
        label: m.label,
        ...timing(m.startTime, m.stopTime),
        size: m.size,
        storedSize: m.storedSize,
        files: m.files.filter((f) => f.type === 'file').length,
      });
    });
    hooks.backup.failed.tapPromise(TAP, async (e, error) => {
      await this.settle();
      await raise('backup.failed', { server: e.server, backupId: e.backupId, method: e.method, repository: e.repository, error: eventError(error) });
    });

    hooks.archive.pushFailed.tapPromise(TAP, async (e, error) => {
      if (!this.wantsAny(e.server, 'archive.failed', 'archive.recovered')) return;
      const state = new FailureStateFile(this.harbor.stateDir(), e.server, 'archive');
      const next = onFailure(state.read(), new Date());
      state.write(next.state);
      if (next.notify) {
        await raise('archive.failed', { server: e.server, walFile: e.walFile, repository: e.repository, failingSince: next.state.since, failures: next.state.failures, error: eventError(error) }, 'archive');
      }
    });
    hooks.archive.pushed.tapPromise(TAP, async (e) => {
      if (!this.wantsAny(e.server, 'archive.failed', 'archive.recovered')) return;
      const ended = new FailureStateFile(this.harbor.stateDir(), e.server, 'archive').takeFailure();
      if (ended) await raise('archive.recovered', { server: e.server, walFile: e.walFile, repository: e.repository, failingSince: ended.since, failures: ended.failures }, 'archive');
    });
    hooks.archive.receiverState.tapPromise(TAP, async (server, receiverState, detail) => {
      if (!this.wantsAny(server, 'receive-wal.stopped')) return;
      const state = new FailureStateFile(this.harbor.stateDir(), server, 'receive-wal');
      if (receiverState === 'streaming') {
        state.takeFailure();
        return;
      }
      if (receiverState !== 'stopped' && receiverState !== 'failed') return;
      const next = onFailure(state.read(), new Date());
      state.write(next.state);
      if (next.notify) {
        await raise('receive-wal.stopped', { server, state: receiverState, failingSince: next.state.since, failures: next.state.failures, error: detail ? { message: detail } : undefined });
      }
    });

    hooks.retention.expired.tapPromise(TAP, (e) =>
      raise('retention.expired', { server: e.server, repository: e.repository, kind: e.kind, subject: e.subject, reason: e.reason }),
    );
    hooks.recovery.after.tapPromise(TAP, (e, result) =>
      raise('restore.succeeded', { server: e.server, backupId: e.backupId, repository: e.repository, destination: e.destination, files: result.files, size: result.bytes, seconds: result.seconds }),
    );
    hooks.recovery.failed.tapPromise(TAP, (e, error) =>
      raise('restore.failed', { server: e.server, backupId: e.backupId, repository: e.repository, destination: e.destination, error: eventError(error) }),
    );
    // A monitoring system may run check every few minutes: notify a failure when it starts or changes, remind hourly.
    hooks.checked.tapPromise(TAP, async (server, results) => {
      if (!this.wantsAny(server.name, 'check.failed')) return;
      const state = new FailureStateFile(this.harbor.stateDir(), server.name, 'check');
      const failed = results.filter((r) => !r.ok);
      if (failed.length === 0) {
        state.takeFailure();
        return;
      }
      const next = onFailure(state.read(), new Date(), failed.map((r) => r.name).sort().join(', '));
      state.write(next.state);
      if (next.notify) {
        await raise('check.failed', { server: server.name, failingSince: next.state.since, failures: next.state.failures, checks: failed.map((r) => ({ name: r.name, detail: r.detail, hint: r.hint })) });
      }
    });
    hooks.check.tapPromise(TAP, (context) => this.check(context));
  }

  private wantsAny(server: string, ...events: EventName[]): boolean {
    return this.configured().some((t) => events.some((e) => targetWants(t, e, server)));
  }

  /** `pgharbor check`: every target of the server can be created (secrets, options) and passes its own check. */
  private async check(context: CheckContext): Promise<void> {
    const server = context.server.name;
    const known = new Set(this.harbor.serverNames());
    const mine = this.targets().filter((t) => !t.config.servers || t.config.servers.includes(server));
    for (const target of mine) {
      const label = `notification target ${target.name} (${target.config.type})`;
      const unknown = (target.config.servers ?? []).filter((s) => !known.has(s));
      if (unknown.length) {
        context.report({ name: label, ok: false, detail: `servers: names unknown server(s) ${unknown.join(', ')}`, hint: `configured servers: ${[...known].join(', ')}` });
        continue;
      }
      await context.run(label, async () => {
        if (!target.notifier) return { ok: false, detail: target.broken, hint: 'fix this target in "notifications" of the config' };
        const abort = AbortSignal.timeout(5000);
        return target.notifier.check ? await target.notifier.check(abort) : { ok: true };
      });
    }
    if (mine.length === 0) return;
    await context.run('notification spool', async () => {
      const spool = this.spool;
      const backlog = spool.backlog();
      if (backlog.count === 0) return { ok: true, detail: `${spool.dir}: empty` };
      const age = Date.now() - Date.parse(backlog.oldest!);
      return {
        ok: age < 60 * 60_000,
        detail: `${backlog.count} undelivered notification(s) in ${spool.dir}, oldest from ${backlog.oldest}`,
        hint: 'a target was unreachable; they are retried by the flusher and by `pgharbor cron`. Try the targets with pgharbor notify-test SERVER',
      };
    });
  }
}

/** Whether a flusher holds the spool's lock (a live holder of flusher.lock). */
function flusherRunning(spoolDir: string): boolean {
  return localLockHolder(spoolDir, FLUSHER_LOCK) !== undefined;
}

/** The spool's flusher lock: `<spool>/.flusher.lock` (lock/local-lock-store.ts); a dot name, which the spool's backlog skips. */
export const FLUSHER_LOCK = '.flusher';

/**
 * Take the flusher lock (a dead owner's lock is taken over). Returns a
 * release function, or undefined if another flusher runs.
 */
export async function lockFlusher(spoolDir: string): Promise<(() => Promise<void>) | undefined> {
  try {
    const lock = await acquireLocalLock(spoolDir, FLUSHER_LOCK, 'notification flusher');
    return async () => {
      await lock.release();
    };
  } catch (error) {
    if (error instanceof HarborError) return undefined;
    throw error;
  }
}
