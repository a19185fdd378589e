/**
 * pg_receivewal's last words, sorted into the cases receive-wal knows how to
 * get out of by itself. The seed's DBA met the first three after a
 * recovery: the spool still pointed at the old timeline, or at WAL the
 * restored server had not written yet, and pg_receivewal refused to start
 * until the status files were reset by hand.
 */
export type ReceiverTrap =
  /** The server's history left the spool's timeline before the spool's position (a restore or promotion). */
  | { kind: 'forked'; timeline: number; forkLsn: string; message: string }
  /** The spool is ahead of everything the server has written. */
  | { kind: 'ahead'; message: string }
  /** The spool's timeline is not one the server knows. */
  | { kind: 'timeline'; message: string }
  /** The server no longer has the WAL the spool continues from. */
  | { kind: 'removed'; segment?: string; message: string }
  /** A file in the spool that pg_receivewal cannot continue (wrong size, unreadable). */
  | { kind: 'bad-spool-file'; message: string }
  | { kind: 'slot-missing'; message: string }
  | { kind: 'slot-active'; message: string };

export type TrapKind = ReceiverTrap['kind'];

/** Traps that a reset of the spool (push, move aside, restart from the server's position) gets out of. */
export const RESETTABLE: readonly TrapKind[] = ['forked', 'ahead', 'timeline', 'removed', 'bad-spool-file'];

const LSN = '[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}';

export function classifyReceiverError(output: string): ReceiverTrap | undefined {
  const text = output.replace(/\s+/g, ' ');
  const firstLine = (pattern: RegExp) => clean(output.split('\n').find((l) => pattern.test(l)) ?? text);
  let match: RegExpExecArray | null;
  if ((match = new RegExp(`history forked from timeline (\\d+) at (${LSN})`).exec(text))) {
    const forkLsn = match[2].toUpperCase();
    return { kind: 'forked', timeline: Number(match[1]), forkLsn, message: `${firstLine(/not in this server's history/)}: it forked from timeline ${match[1]} at ${forkLsn}` };
  }
  if (/is ahead of the WAL flush position of this server|ahead of the server's current flush position/.test(text)) {
    return { kind: 'ahead', message: firstLine(/ahead of/) };
  }
  if (/requested timeline \d+ is not in this server's history|starting timeline \d+ is not present in the server|not in this server's history|server reported unexpected next timeline|but reported next timeline/.test(text)) {
    return { kind: 'timeline', message: firstLine(/timeline/) };
  }
  if ((match = /requested WAL segment ([0-9A-F]{24}) has already been removed/.exec(text))) {
    return { kind: 'removed', segment: match[1], message: firstLine(/already been removed/) };
  }
  if (/write-ahead log file "[^"]+" has \d+ bytes?, should be 0 or \d+|could not (?:open|read|seek in|stat) (?:file|write-ahead log file) "[^"]*(?:[0-9A-F]{24})/.test(text)) {
    return { kind: 'bad-spool-file', message: firstLine(/write-ahead log file|could not/) };
  }
  if (/replication slot "[^"]+" does not exist/.test(text)) return { kind: 'slot-missing', message: firstLine(/does not exist/) };
  if (/replication slot "[^"]+" is active for PID \d+/.test(text)) return { kind: 'slot-active', message: firstLine(/is active for PID/) };
  return undefined;
}

/** A pg_receivewal error line without the wrapping: "pg_receivewal: error: could not send replication command …: ERROR:  …". */
function clean(line: string): string {
  return line
    .replace(/^pg_receivewal: (error: )?/, '')
    .replace(/could not send replication command "[^"]+": /, '')
    .replace(/unexpected termination of replication stream: /, '')
    .replace(/\b(ERROR|FATAL):\s+/, '')
    .trim();
}

/** The most telling line of pg_receivewal's output, for state details and logs. */
export function lastError(output: string): string | undefined {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /error:|FATAL|ERROR/.test(l) && !/: error: disconnected$/.test(l));
  const line = errors.at(-1) ?? lines.at(-1);
  return line === undefined ? undefined : clean(line);
}
