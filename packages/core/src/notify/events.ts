import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { redact } from '../log.js';
import { PGHARBOR_VERSION } from '../version.js';

/**
 * The notification vocabulary: every event pgharbor raises from its
 * lifecycle hooks, and what each one carries. Receivers (a webhook, a
 * script, a mail reader, your own notifier) see exactly these fields,
 * documented in docs/notifications.md. No field ever holds a secret: every
 * string passes through the log redaction before it leaves the process.
 */
export const EVENT_NAMES = [
  'backup.started',
  'backup.succeeded',
  'backup.failed',
  'archive.failed',
  'archive.recovered',
  'receive-wal.stopped',
  'retention.expired',
  'restore.succeeded',
  'restore.failed',
  'check.failed',
] as const;

export type EventName = (typeof EVENT_NAMES)[number];

export type Severity = 'info' | 'warning' | 'error';

/** Severity and a short title per event (the title heads an e-mail subject or a chat line). */
export const EVENT_KINDS: Readonly<Record<EventName, { severity: Severity; title: string }>> = {
  'backup.started': { severity: 'info', title: 'backup started' },
  'backup.succeeded': { severity: 'info', title: 'backup succeeded' },
  'backup.failed': { severity: 'error', title: 'backup FAILED' },
  'archive.failed': { severity: 'error', title: 'WAL archiving FAILING' },
  'archive.recovered': { severity: 'info', title: 'WAL archiving works again' },
  'receive-wal.stopped': { severity: 'error', title: 'WAL receiver stopped' },
  'retention.expired': { severity: 'info', title: 'expired by retention' },
  'restore.succeeded': { severity: 'info', title: 'restore succeeded' },
  'restore.failed': { severity: 'error', title: 'restore FAILED' },
  'check.failed': { severity: 'warning', title: 'check FAILED' },
};

export interface EventError {
  message: string;
  /** What to do about it (the HINT line of the CLI). */
  hint?: string;
}

/** One event, as every notification target receives it (JSON for webhooks and commands). */
export interface HarborEvent {
  event: EventName;
  /** Unique per event; a receiver can drop duplicates by it (delivery is at least once). */
  id: string;
  /** When the event was raised (ISO 8601, UTC). */
  time: string;
  /** The host pgharbor ran on. */
  host: string;
  server: string;
  severity: Severity;
  /** One line for humans: "backup 20261125T142600 of pga FAILED: …". */
  summary: string;
  pgharborVersion: string;
  /** Set by `pgharbor notify-test`: a sample, nothing happened. */
  test?: boolean;
  backupId?: string;
  /** Backup label (backup.started, backup.succeeded). */
  label?: string;
  method?: string;
  /** Repository location (a path or URL without credentials). */
  repository?: string;
  /** WAL file being archived (archive.failed, archive.recovered). */
  walFile?: string;
  startTime?: string;
  endTime?: string;
  /** Duration of the operation. */
  seconds?: number;
  /** Bytes of data (backup: the cluster's files; restore: the bytes written). */
  size?: number;
  /** Bytes stored in the repository (backup.succeeded). */
  storedSize?: number;
  files?: number;
  /** Restore destination directory. */
  destination?: string;
  /** archive.failed / archive.recovered / receive-wal.stopped: since when it fails and how many failures so far. */
  failingSince?: string;
  failures?: number;
  /** receive-wal.stopped: the receiver's state (stopped, failed). */
  state?: string;
  /** retention.expired: what expired (a backup id or a WAL range), and why. */
  kind?: 'backup' | 'wal';
  subject?: string;
  reason?: string;
  /** check.failed: the failed checks. */
  checks?: { name: string; detail?: string; hint?: string }[];
  error?: EventError;
}

/** What a raiser supplies; the rest (id, time, host, severity, summary) is filled in. */
export type EventFields = Omit<HarborEvent, 'event' | 'id' | 'time' | 'host' | 'severity' | 'summary' | 'pgharborVersion'>;

/** Build an event: fill in the common fields and redact every string. */
export function createEvent(name: EventName, fields: EventFields, now: Date = new Date()): HarborEvent {
  const event: HarborEvent = {
    event: name,
    id: randomUUID(),
    time: now.toISOString(),
    host: os.hostname(),
    severity: EVENT_KINDS[name].severity,
    summary: '',
    pgharborVersion: PGHARBOR_VERSION,
    ...withoutEmpty(fields),
  };
  event.summary = summarizeEvent(event);
  return redactDeep(event);
}

/** The one-line summary of an event. */
export function summarizeEvent(e: HarborEvent): string {
  const backup = e.backupId ? `backup ${e.backupId} of ${e.server}` : `backup of ${e.server}`;
  const why = e.error ? `: ${e.error.message}` : '';
  const text = ((): string => {
    switch (e.event) {
      case 'backup.started':
        return `${backup} started${e.repository ? ` (into ${e.repository})` : ''}`;
      case 'backup.succeeded':
        return `${backup} succeeded${e.size === undefined ? '' : `: ${mebibytes(e.size)}`}${e.seconds === undefined ? '' : ` in ${Math.round(e.seconds)} s`}`;
      case 'backup.failed':
        return `${backup} FAILED${why}`;
      case 'archive.failed':
        return `WAL archiving of ${e.server} is FAILING${e.walFile ? ` at ${e.walFile}` : ''}${e.failures && e.failures > 1 ? ` (${e.failures} failures since ${e.failingSince})` : ''}${why}`;
      case 'archive.recovered':
        return `WAL archiving of ${e.server} works again${e.walFile ? ` (${e.walFile} archived` : ' ('}${e.failures ? ` after ${e.failures} failures since ${e.failingSince})` : ')'}`;
      case 'receive-wal.stopped':
        return `WAL receiver of ${e.server} ${e.state ?? 'stopped'}${why}`;
      case 'retention.expired':
        return `${e.kind === 'wal' ? 'WAL' : 'backup'} ${e.subject} of ${e.server} expired${e.reason ? ` (${e.reason})` : ''}`;
      case 'restore.succeeded':
        return `${backup} restored into ${e.destination}${e.files === undefined ? '' : ` (${e.files} files)`}`;
      case 'restore.failed':
        return `restore of ${backup} into ${e.destination} FAILED${why}`;
      case 'check.failed':
        return `check of ${e.server} FAILED: ${(e.checks ?? []).map((c) => c.name).join(', ')}`;
    }
  })();
  return e.test ? `[test] ${text}` : text;
}

function mebibytes(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function withoutEmpty<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== '')) as T;
}

/** Pass every string through the log redaction (registered secrets, conninfo and URL passwords). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}

/** The error of a failure, as events carry it (message and hint, nothing else: no stack, no cause). */
export function eventError(error: unknown): EventError {
  const message = error instanceof Error ? error.message : String(error);
  const hint = (error as { hint?: unknown } | undefined)?.hint;
  return typeof hint === 'string' && hint ? { message, hint } : { message };
}
