import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import { errorMessage } from '../errors.js';
import { expire } from '../retention/expire.js';
import { runningReceiver, streamingSettings } from '../archive/receive-wal-state.js';
import { sweepRepository } from './sweep-repository.js';

export interface CronServerResult {
  server: string;
  /** One line per server, as the pass logs it. */
  summary: string;
  receiveWal?: 'running' | 'started' | 'off';
  expired: number;
  /** Interrupted deletions finished and FAILED backups removed. */
  swept: number;
  errors: string[];
}

/**
 * `pgharbor cron`: one maintenance pass over every server. Idempotent and
 * cheap when there is nothing to do, so the system cron can run it every
 * minute: it starts receive-wal where streaming_archiver is on and none runs
 * (receive-wal itself moves completed WAL into the repositories), applies
 * retention where retention_policy_mode is auto, finishes interrupted
 * deletions and removes FAILED backups (sweep-repository.ts), and records
 * the pass.
 */
export async function cronPass(harbor: Harbor, options: { startReceiver: (server: string) => void; now?: Date }): Promise<CronServerResult[]> {
  const results: CronServerResult[] = [];
  for (const name of harbor.serverNames()) {
    const server = harbor.server(name);
    const result: CronServerResult = { server: name, summary: '', expired: 0, swept: 0, errors: [] };
    try {
      const streaming = streamingSettings(harbor, server);
      if (!streaming.enabled) result.receiveWal = 'off';
      else if (runningReceiver(streaming.stateDir)) result.receiveWal = 'running';
      else {
        options.startReceiver(name);
        result.receiveWal = 'started';
      }
    } catch (error) {
      result.errors.push(`receive-wal: ${errorMessage(error)}`);
    }
    if ((server.config.retention_policy_mode ?? 'auto') === 'auto' && server.config.retention) {
      try {
        result.expired = (await expire(harbor, server, { now: options.now })).filter((item) => !item.keptBecause).length;
      } catch (error) {
        result.errors.push(`retention: ${errorMessage(error)}`);
      }
    }
    for (const repository of await server.repositories().catch(() => [])) {
      try {
        const sweep = await sweepRepository(harbor, server, repository);
        result.swept += sweep.finished.length + sweep.failed.length;
      } catch (error) {
        result.errors.push(`sweep of ${repository.name}: ${errorMessage(error)}`);
      }
    }
    result.summary = [
      `${name}:`,
      result.receiveWal === 'off' ? 'streaming off' : `receive-wal ${result.receiveWal ?? 'unknown'}`,
      server.config.retention ? `retention ${server.config.retention_policy_mode ?? 'auto'}: ${result.expired} removed` : 'no retention policy',
      ...(result.swept ? [`swept: ${result.swept} interrupted or failed backups removed`] : []),
      ...(result.errors.length ? [`ERRORS: ${result.errors.join('; ')}`] : []),
    ].join(' ');
    harbor.logger.info(result.summary);
    results.push(result);
  }
  // Deliver notifications that earlier runs could not (archive-push only gets 2 s for them).
  await harbor.notifications.flush().catch((error: unknown) => harbor.logger.warn(`notification spool: ${errorMessage(error)}`));
  await recordRun(harbor, results);
  return results;
}

async function recordRun(harbor: Harbor, results: CronServerResult[]): Promise<void> {
  const file = path.join(harbor.stateDir(), 'cron-last-run.json');
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(`${file}.tmp`, JSON.stringify({ time: new Date().toISOString(), pid: process.pid, results }, null, 1) + '\n', { mode: 0o600 });
  await fs.rename(`${file}.tmp`, file);
}
