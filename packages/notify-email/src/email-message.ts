import { EVENT_KINDS, type HarborEvent } from '@pgharbor/core';

/** Subject and plain-text body of the mail for one event. */
export function emailMessage(event: HarborEvent, subjectPrefix: string): { subject: string; text: string } {
  const title = EVENT_KINDS[event.event].title;
  const subject = `${subjectPrefix ? `${subjectPrefix} ` : ''}${event.test ? '[test] ' : ''}${event.server}: ${title}${event.backupId ? ` ${event.backupId}` : ''}`;
  const fields: [string, unknown][] = [
    ['Event', event.event],
    ['Server', event.server],
    ['Host', event.host],
    ['Time', event.time],
    ['Backup', event.backupId],
    ['Label', event.label],
    ['Repository', event.repository],
    ['WAL file', event.walFile],
    ['Destination', event.destination],
    ['Started', event.startTime],
    ['Ended', event.endTime],
    ['Size', event.size],
    ['Failing since', event.failingSince],
    ['Failures', event.failures],
    ['Event id', event.id],
  ];
  const lines = [
    event.summary,
    '',
    ...fields.filter(([, value]) => value !== undefined).map(([name, value]) => `${`${name}:`.padEnd(15)} ${value}`),
    ...(event.checks ?? []).map((c) => `Check failed:   ${c.name}${c.detail ? ` (${c.detail})` : ''}${c.hint ? `\n                HINT: ${c.hint}` : ''}`),
    ...(event.error ? ['', `ERROR: ${event.error.message}`, ...(event.error.hint ? [`HINT: ${event.error.hint}`] : [])] : []),
    '',
    `-- pgharbor ${event.pgharborVersion}`,
  ];
  return { subject: subject.replace(/[\r\n]+/g, ' '), text: lines.join('\n') + '\n' };
}
