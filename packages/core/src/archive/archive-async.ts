import { existsSync, watch, type FSWatcher } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import { HarborError, errorMessage } from '../errors.js';
import { parseSize } from '../config/archive-schema.js';
import { acquireLocalLock, localLockHolder } from '../lock/local-lock-store.js';
import type { HeldLock } from '../lock/lock.js';
import { archivePush } from './archive-push.js';
import { walFileKind } from './wal-file-name.js';

/**
 * Asynchronous archiving, in the spirit of pgBackRest's archive-async: a
 * background archiver reads pg_wal/archive_status/*.ready, pushes segments
 * ahead of PostgreSQL in parallel and leaves a marker per stored segment in
 * a local spool; archive-push then only finds (and removes) the marker. A
 * segment is confirmed only after it is stored in every repository, so
 * nothing changes for PostgreSQL's guarantees. When more WAL waits than
 * archive_queue_max, the archiver raises an alarm; it never drops WAL.
 */
export interface AsyncArchiveSettings {
  spoolDir: string;
  processMax: number;
  queueMaxBytes?: number;
  timeoutSeconds: number;
}

export function asyncArchiveSettings(harbor: Harbor, server: ServerHandle): AsyncArchiveSettings {
  const config = server.config as { archive_spool_dir?: string; archive_process_max?: number; archive_queue_max?: string; archive_timeout?: number };
  return {
    spoolDir: config.archive_spool_dir ? path.resolve(server.configDir, config.archive_spool_dir) : path.join(harbor.stateDir(), server.name, 'archive-spool'),
    processMax: config.archive_process_max ?? 2,
    queueMaxBytes: config.archive_queue_max ? parseSize(config.archive_queue_max) : undefined,
    timeoutSeconds: config.archive_timeout ?? 60,
  };
}

const okMarker = (spool: string, name: string) => path.join(spool, 'out', `${name}.ok`);
const errorMarker = (spool: string, name: string) => path.join(spool, 'out', `${name}.error`);
export const alarmFile = (spool: string) => path.join(spool, 'queue-alarm.json');

/** The archive-push side: wait for the archiver's verdict on this segment, starting the archiver when none runs. */
export async function archivePushAsync(
  settings: AsyncArchiveSettings,
  server: string,
  walPath: string,
  startArchiver: (pgWalDir: string) => void,
): Promise<void> {
  const name = path.basename(walPath);
  const deadline = Date.now() + settings.timeoutSeconds * 1000;
  let started = false;
  for (;;) {
    try {
      await fs.unlink(okMarker(settings.spoolDir, name));
      return; // stored in every repository by the archiver
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const failure = await fs.readFile(errorMarker(settings.spoolDir, name), 'utf8').catch(() => undefined);
    if (failure !== undefined) {
      await fs.rm(errorMarker(settings.spoolDir, name), { force: true });
      throw new HarborError(`archive-push (async) of ${name} for ${server}: ${failure}`, { hint: 'PostgreSQL retries; the archiver tries again. Check the repositories.' });
    }
    if (!started && !archiverRunning(settings.spoolDir)) {
      startArchiver(path.dirname(path.resolve(walPath)));
      started = true;
    }
    if (Date.now() > deadline) {
      throw new HarborError(`archive-push (async) of ${name} for ${server}: not confirmed by the archiver within ${settings.timeoutSeconds} s`, {
        hint: `PostgreSQL retries. Is the archiver running? See ${path.join(settings.spoolDir, 'archiver.log')}`,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, started ? 20 : 10));
  }
}

export function archiverRunning(spoolDir: string): boolean {
  return localLockHolder(spoolDir, 'archiver') !== undefined;
}

/** Take the spool's archiver lock: of two archivers started at once, one runs. */
async function claimArchiver(spoolDir: string): Promise<HeldLock | undefined> {
  try {
    return await acquireLocalLock(spoolDir, 'archiver', 'async archiver');
  } catch (error) {
    if (error instanceof HarborError) return undefined; // another archiver runs
    throw error;
  }
}

/**
 * The archiver: runs until no segment has been ready for `idleSeconds`.
 * One per server and spool (the spool's archiver.lock keeps a second one from starting).
 */
export async function runAsyncArchiver(harbor: Harbor, server: ServerHandle, pgWalDir: string, idleSeconds = 30): Promise<void> {
  const settings = asyncArchiveSettings(harbor, server);
  await fs.mkdir(path.join(settings.spoolDir, 'out'), { recursive: true, mode: 0o700 });
  const lock = await claimArchiver(settings.spoolDir);
  if (!lock) return;
  const statusDir = path.join(pgWalDir, 'archive_status');
  const retryAt = new Map<string, number>();
  const inFlight = new Set<string>();
  let queue: string[] = [];
  let scanning: Promise<void> | undefined;
  let idleSince = Date.now();
  let alarmRaised = false;
  let lastSweep = 0;
  // The cluster's pg_wal is gone (the cluster was removed or moved): nothing will be ready again, stop.
  let statusDirGone = false;
  const readStatusDir = (dir: string) =>
    fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') statusDirGone = true;
      return [] as string[];
    });
  // A new .ready file wakes idle workers at once (PostgreSQL is about to ask for it); the timeout stays as a fallback.
  const statusChange = watchDirectory(statusDir);

  // One directory scan at a time, shared by the workers that ran out of work.
  const scan = () =>
    (scanning ??= (async () => {
      const ready = (await readStatusDir(statusDir))
        .filter((f) => f.endsWith('.ready'))
        .map((f) => f.slice(0, -'.ready'.length))
        .filter((name) => walFileKind(name))
        .sort(historyFirst);
      // A short queue: the next scan (and a new timeline's history file) comes soon even in a long backlog.
      queue = ready.filter((name) => !inFlight.has(name) && !existsSync(okMarker(settings.spoolDir, name)) && (retryAt.get(name) ?? 0) <= Date.now()).slice(0, settings.processMax * 8);
      if (queue.length > 0) idleSince = Date.now();
      if (Date.now() - lastSweep > 10_000) {
        lastSweep = Date.now();
        await sweepStaleMarkers(settings.spoolDir, new Set(ready));
      }

      const waitingBytes = ready.length * 16 * 1024 * 1024;
      if (settings.queueMaxBytes !== undefined && waitingBytes > settings.queueMaxBytes) {
        if (!alarmRaised) {
          alarmRaised = true;
          const message = `${ready.length} WAL files (about ${Math.round(waitingBytes / 1024 ** 2)} MiB) wait for archiving, more than archive_queue_max; nothing is dropped, but pg_wal grows`;
          harbor.logger.error(`server ${server.name}: ${message}`);
          await fs.writeFile(alarmFile(settings.spoolDir), JSON.stringify({ since: new Date().toISOString(), message }) + '\n');
          await harbor.hooks.archive.pushFailed.promise({ server: server.name, walFile: ready[0] }, new HarborError(message)).catch(() => {});
        }
      } else if (alarmRaised) {
        alarmRaised = false;
        await fs.rm(alarmFile(settings.spoolDir), { force: true });
      }
    })().finally(() => (scanning = undefined)));

  // processMax workers, each taking the oldest waiting segment as soon as it is free: no batch
  // waits for its slowest push, so PostgreSQL's archive-push finds the next marker ready.
  const worker = async () => {
    while (Date.now() - idleSince < idleSeconds * 1000 && !statusDirGone) {
      let name = queue.shift();
      if (name === undefined) {
        await scan();
        name = queue.shift();
      }
      if (name === undefined) {
        await statusChange.wait(50);
        continue;
      }
      inFlight.add(name);
      try {
        await archivePush(harbor, server, path.join(pgWalDir, name));
        await writeMarker(okMarker(settings.spoolDir, name), '');
        retryAt.delete(name);
      } catch (error) {
        await writeMarker(errorMarker(settings.spoolDir, name), errorMessage(error));
        retryAt.set(name, Date.now() + 5000);
      } finally {
        inFlight.delete(name);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, settings.processMax) }, worker));
  } finally {
    statusChange.close();
    await lock.release();
  }
}

/** Wait for a change in `dir` or a timeout, whichever comes first (inotify where there is one). */
function watchDirectory(dir: string): { wait(milliseconds: number): Promise<void>; close(): void } {
  const waiting = new Set<() => void>();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, () => {
      for (const wake of waiting) wake();
    });
    watcher.on('error', () => watcher?.close()); // the timeout still works
  } catch {
    // no watching here (an exotic filesystem): timeouts only
  }
  return {
    wait: (milliseconds) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiting.delete(done);
          resolve();
        };
        const timer = setTimeout(done, milliseconds);
        waiting.add(done);
      }),
    close: () => watcher?.close(),
  };
}

/**
 * Remove `.ok` markers nobody will consume: a segment pushed again between
 * archive-push taking its marker and PostgreSQL renaming `.ready` to `.done`
 * gets a second one. Left there, it could one day confirm a different file
 * of the same name (a new cluster archiving with this spool) that was never
 * stored. A marker older than a minute whose segment is not ready is stale.
 */
async function sweepStaleMarkers(spoolDir: string, ready: Set<string>): Promise<void> {
  const out = path.join(spoolDir, 'out');
  for (const file of await fs.readdir(out).catch(() => [] as string[])) {
    if (!file.endsWith('.ok') || ready.has(file.slice(0, -'.ok'.length))) continue;
    const info = await fs.stat(path.join(out, file)).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > 60_000) await fs.rm(path.join(out, file), { force: true });
  }
}

/** PostgreSQL needs a timeline's history file before its segments. */
function historyFirst(a: string, b: string): number {
  const ha = a.endsWith('.history') ? 0 : 1;
  const hb = b.endsWith('.history') ? 0 : 1;
  return ha - hb || (a < b ? -1 : a > b ? 1 : 0);
}

async function writeMarker(file: string, content: string): Promise<void> {
  const temporary = `${file}.tmp`;
  await fs.writeFile(temporary, content, { mode: 0o600 });
  await fs.rename(temporary, file);
}
