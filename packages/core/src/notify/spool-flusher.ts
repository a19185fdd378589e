/**
 * The detached notification flusher: `node spool-flusher.js CONFIG`.
 * Started by a process that could not deliver everything in its own time
 * (archive-push gives delivery 2 s, then PostgreSQL needs its answer). It
 * delivers the spool with the targets' full timeouts and retries in a few
 * passes spread over minutes, then exits; what is still undelivered waits
 * for the next flusher or `pgharbor cron`. Its log goes to
 * <state_dir>/notify.log, since no terminal is attached.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harbor } from '../harbor.js';
import { closeInheritedDescriptors } from '../inherited-descriptors.js';
import { createLogger } from '../log.js';
import { lockFlusher } from './dispatcher.js';

/** Delay before each pass: at once, then after the receiver had time to come back. */
const PASSES_MS = [0, 15_000, 60_000, 300_000];

async function run(configFile: string): Promise<void> {
  closeInheritedDescriptors(); // it outlives its starter by minutes
  let logFile: string | undefined;
  const logger = createLogger({ level: 'info', timestamps: true, write: (line) => logFile && appendFileSync(logFile, `${line} [flusher ${process.pid}]\n`) });
  const harbor = await Harbor.load({ configFile, logger });
  const notifications = harbor.notifications;
  logFile = path.join(harbor.stateDir(), 'notify.log');
  const release = await lockFlusher(notifications.spool.dir);
  if (!release) return; // another flusher is at work
  try {
    for (const delay of PASSES_MS) {
      await sleep(delay);
      const report = await notifications.flush();
      if (report.delivered || report.dropped) logger.info(`flushed the notification spool: ${report.delivered} delivered, ${report.pending} pending, ${report.dropped} dropped`);
      if (notifications.spool.backlog().count === 0) break;
    }
  } finally {
    await release();
    await harbor.close();
  }
}

await run(process.argv[2]).catch(() => {
  process.exitCode = 1;
});
