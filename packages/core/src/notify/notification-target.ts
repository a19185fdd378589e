import { EVENT_NAMES, type EventName } from './events.js';

/** One entry of `notifications:` in the config. */
export interface NotificationTargetConfig {
  /** Notifier type: webhook, command, email, or one a plugin registers. */
  type: string;
  /** Name shown in logs, `check` and `notify-test`; default "<type>-<n>". */
  name?: string;
  /** Events this target wants: names, "backup.*" or "*"; default every event. */
  on?: string[];
  /** Servers this target hears about; default all. */
  servers?: string[];
  /** Seconds one delivery attempt may take (default 10). */
  timeout?: number;
  /** Further attempts after a failed one (default 2), with backoff 1 s, 2 s, 4 s… */
  retries?: number;
  [option: string]: unknown;
}

export const DEFAULT_TIMEOUT_SECONDS = 10;
export const DEFAULT_RETRIES = 2;

/** The keys every target has; the rest belongs to its notifier. */
export const COMMON_TARGET_KEYS = ['type', 'name', 'on', 'servers', 'timeout', 'retries'] as const;

/** Patterns allowed in `on:`: each event name, each family ("backup.*"), and "*". */
export const EVENT_PATTERNS: readonly string[] = [
  '*',
  ...[...new Set(EVENT_NAMES.map((name) => name.split('.')[0]))].map((family) => `${family}.*`),
  ...EVENT_NAMES,
];

export function targetName(target: NotificationTargetConfig, index: number): string {
  return target.name ?? `${target.type}-${index + 1}`;
}

export function eventMatches(patterns: readonly string[] | undefined, event: EventName): boolean {
  if (!patterns) return true;
  return patterns.some((p) => p === '*' || p === event || (p.endsWith('.*') && event.startsWith(p.slice(0, -1))));
}

/** Does this target want this event for this server? */
export function targetWants(target: NotificationTargetConfig, event: EventName, server: string): boolean {
  return eventMatches(target.on, event) && (!target.servers || target.servers.includes(server));
}

/** The event `notify-test` sends to a target when none is named: the first it listens for. */
export function sampleEventFor(target: NotificationTargetConfig): EventName {
  const first = (target.on ?? []).find((p) => p !== '*' && !p.endsWith('.*')) as EventName | undefined;
  if (first) return first;
  const family = (target.on ?? []).find((p) => p.endsWith('.*'));
  return EVENT_NAMES.find((name) => family && eventMatches([family], name) && name.endsWith('failed')) ??
    EVENT_NAMES.find((name) => family && eventMatches([family], name)) ??
    'backup.failed';
}
