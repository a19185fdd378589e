import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import { HarborError, errorMessage } from '../errors.js';
import { formatLsn, nextSegment, parseLsn, walFileName } from '../postgres/wal.js';
import { archivePush, checkSegmentIdentity } from './archive-push.js';
import { findArchivedWal, pushWal } from './wal-archive.js';
import { walFileKind } from './wal-file-name.js';
import { readWalSegmentHeader } from './wal-header.js';
import type { StatusStore } from './receive-wal-state.js';
import type { ReceiverTrap } from './receive-wal-traps.js';

/**
 * The local directory pg_receivewal writes into. Completed segments and
 * history files leave it for every repository (then are deleted here);
 * the segment being written (`.partial`) is copied to the repositories as
 * it grows, so that a restore reaches the last streamed transaction.
 */

/** pg_receivewal's own order (FindStreamingStart): by segment number, then timeline. */
export function spoolOrder(a: string, b: string): number {
  const bySegment = a.slice(8, 24).localeCompare(b.slice(8, 24));
  return bySegment !== 0 ? bySegment : a.slice(0, 8).localeCompare(b.slice(0, 8));
}

export interface SpoolFiles {
  /** Completed segments and history files, history first, then in WAL order. */
  completed: string[];
  /** .partial segments in pg_receivewal's order: the last one is the one being written. */
  partials: string[];
  /** Other WAL-related leftovers (.tmp files of an interrupted pg_receivewal). */
  other: string[];
}

export async function listSpool(dir: string): Promise<SpoolFiles> {
  const names = await fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const history = names.filter((n) => walFileKind(n) === 'history').sort();
  const segments = names.filter((n) => walFileKind(n) === 'segment').sort(spoolOrder);
  const partials = names.filter((n) => walFileKind(n) === 'partial').sort(spoolOrder);
  const other = names.filter((n) => /^[0-9A-F]{8}(?:[0-9A-F]{16})?[.a-z]*\.tmp$/.test(n));
  return { completed: [...history, ...segments], partials, other };
}


/** Store a .partial in every repository (replacing the previous copy). Returns false for a file with no WAL yet. */
export async function pushPartial(server: ServerHandle, file: string): Promise<boolean> {
  const name = path.basename(file);
  const content = await fs.readFile(file);
  const header = readWalSegmentHeader(content);
  if (!header) return false; // an empty start marker, or pg_receivewal has not written the first page yet
  const repositories = await server.repositories();
  const results = await Promise.allSettled(
    repositories.map(async (repository) => {
      await checkSegmentIdentity(repository, name, header);
      await pushWal(repository.storage, server.name, name, content, repository.codec); // compressed/encrypted like every WAL file
    }),
  );
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${repositories[i].name}: ${errorMessage(r.reason)}`] : []));
  if (failed.length) throw new HarborError(`storing ${name} failed in ${failed.join('; ')}`);
  return true;
}

/** What any repository holds of the .partial `name`: the completed segment, another copy of the .partial, or nothing. */
async function archivedCopy(server: ServerHandle, name: string): Promise<'completed' | 'partial' | undefined> {
  const segment = name.replace(/\.partial$/, '');
  let found: 'partial' | undefined;
  for (const repository of await server.repositories()) {
    if ((await findArchivedWal(repository.storage, server.name, segment)).some((w) => w.sha256)) return 'completed';
    if ((await findArchivedWal(repository.storage, server.name, name)).length > 0) found = 'partial';
  }
  return found;
}

export interface PositionInfo {
  versionNum: number;
  walSegmentSize: number;
  /** The server's timeline and WAL position now (for PostgreSQL < 15, which cannot start from the slot). */
  timeline?: number;
  currentLsn?: string;
  slotRestartLsn?: string | null;
}

export interface SweepOptions {
  /** Push the .partial now, whatever the interval (on stop and before a reset). */
  final?: boolean;
}

/**
 * Moves WAL out of the spool into the repositories. All its work runs one
 * step at a time (a sweep never overlaps a reset or another sweep).
 */
export class SpoolArchiver {
  private queue: Promise<unknown> = Promise.resolve();
  private lastPartialKey?: string;
  private lastPartialPush = 0;
  private readonly warned = new Map<string, string>();
  /** Partials whose repository copy belongs to someone else (checked once per name). */
  private readonly foreign = new Set<string>();

  constructor(
    private readonly harbor: Harbor,
    private readonly server: ServerHandle,
    readonly dir: string,
    private readonly store: StatusStore,
    private readonly partialIntervalMs = 3000,
  ) {}

  private get log() {
    return this.harbor.logger;
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => {});
    return next;
  }

  /** Say a problem once, and again only when it changes. */
  private warnOnce(key: string, message: string): void {
    if (this.warned.get(key) === message) return;
    this.warned.set(key, message);
    this.log.warn(message);
  }

  sweep(options: SweepOptions = {}): Promise<void> {
    return this.serial(() => this.sweepNow(options));
  }

  private async sweepNow(options: SweepOptions): Promise<void> {
    const { completed, partials } = await listSpool(this.dir);
    let changed = false;
    for (const name of completed) changed = (await this.archiveCompleted(name)) || changed;
    for (const name of partials.slice(0, -1)) changed = (await this.retirePartial(name)) || changed;
    const current = partials.at(-1);
    if (current) changed = (await this.pushCurrentPartial(current, options.final ?? false)) || changed;
    if (changed) await this.store.save();
  }

  /** A completed segment or history file: into every repository, then out of the spool. */
  private async archiveCompleted(name: string): Promise<boolean> {
    const file = path.join(this.dir, name);
    try {
      await archivePush(this.harbor, this.server, file);
    } catch (error) {
      this.warnOnce(name, `receive-wal ${this.server.name}: could not archive ${name}: ${errorMessage(error)}; it stays in ${this.dir} and is retried`);
      return false;
    }
    const { status } = this.store;
    if (walFileKind(name) === 'segment') {
      // The complete segment supersedes the .partial copies of it.
      for (const repository of await this.server.repositories()) {
        // Every variant (.partial, .partial.lz4, .partial.zst.enc…): settings may have changed meanwhile.
        for (const copy of await findArchivedWal(repository.storage, this.server.name, `${name}.partial`).catch(() => [])) await repository.storage.delete(copy.key).catch(() => {});
      }
      if (!status.lastSegment || spoolOrder(name, status.lastSegment) > 0) status.lastSegment = name;
      status.ownPartials = (status.ownPartials ?? []).filter((p) => p !== `${name}.partial`);
    }
    await fs.rm(file, { force: true });
    this.warned.delete(name);
    this.log.info(`receive-wal ${this.server.name}: archived ${name}`);
    return true;
  }

  /**
   * Whether the repositories' copy of this .partial may be replaced: it is
   * ours (stored from this spool since the last reset), or there is none.
   * Another copy (the old timeline's, kept by a reset, or one the server
   * archived itself at promotion) holds WAL ours may not have: keep it.
   */
  private async mayStorePartial(name: string): Promise<boolean> {
    if ((this.store.status.ownPartials ?? []).includes(name)) return true;
    if (this.foreign.has(name)) return false;
    const copy = await archivedCopy(this.server, name);
    if (!copy) return true;
    this.foreign.add(name);
    this.log.info(
      copy === 'completed'
        ? `receive-wal ${this.server.name}: the repositories hold the completed ${name.replace(/\.partial$/, '')}; the streamed ${name} is not stored over it`
        : `receive-wal ${this.server.name}: the repositories hold another copy of ${name} (from before a reset, or archived by the server); it is kept, not replaced by the streamed one`,
    );
    return false;
  }

  /** `writtenAt`: the spool file's mtime seen before the copy began; what is stored holds what was written until then. */
  private async storePartial(name: string, writtenAt?: number): Promise<boolean> {
    if (!(await this.mayStorePartial(name))) return false;
    try {
      if (!(await pushPartial(this.server, path.join(this.dir, name)))) return false;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false; // completed and renamed meanwhile
      this.warnOnce(name, `receive-wal ${this.server.name}: could not store ${name}: ${errorMessage(error)}; retrying`);
      return false;
    }
    this.warned.delete(name);
    const { status } = this.store;
    status.lastPartial = { name, pushedAt: new Date().toISOString(), ...(writtenAt ? { writtenAt: new Date(writtenAt).toISOString() } : {}) };
    const own = (status.ownPartials ?? []).filter((p) => p !== name);
    status.ownPartials = [...own, name].slice(-16);
    return true;
  }

  private async pushCurrentPartial(name: string, final: boolean): Promise<boolean> {
    const stat = await fs.stat(path.join(this.dir, name)).catch(() => undefined);
    if (!stat || stat.size === 0) return false;
    const key = `${name}:${stat.mtimeMs}:${stat.size}`;
    if (key === this.lastPartialKey) return false;
    if (!final && Date.now() - this.lastPartialPush < this.partialIntervalMs) return false;
    this.lastPartialPush = Date.now();
    if (!(await this.storePartial(name, stat.mtimeMs))) return false;
    this.lastPartialKey = key;
    this.log.debug(`receive-wal ${this.server.name}: stored ${name}`);
    return true;
  }

  /**
   * A .partial pg_receivewal no longer writes: the old timeline's last
   * segment after a timeline switch. Stored when it is ours to store, then
   * removed; kept aside when the repositories hold another copy.
   */
  private async retirePartial(name: string): Promise<boolean> {
    const file = path.join(this.dir, name);
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat) return false;
    if (stat.size === 0) {
      await fs.rm(file, { force: true }); // a start marker pg_receivewal passed by: no WAL in it
      return false;
    }
    const mayStore = await this.mayStorePartial(name);
    if (mayStore && !(await this.storePartial(name))) return false; // failed: retried on the next sweep
    if (mayStore) {
      await fs.rm(file, { force: true });
      this.log.info(`receive-wal ${this.server.name}: archived ${name} (the end of timeline ${parseInt(name.slice(0, 8), 16)})`);
    } else {
      const aside = await this.moveAside([name], `${name} was closed at a timeline switch; the repositories hold their own copy of that segment, which was kept`);
      this.log.info(`receive-wal ${this.server.name}: moved ${name}, closed at the timeline switch, to ${aside} (the repositories keep their own copy)`);
    }
    return true;
  }

  /** Move spool files into <spool>/stale/<time>/, with a note saying why. Never deletes. */
  private async moveAside(names: string[], reason: string): Promise<string> {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    let target = path.join(this.dir, 'stale', stamp);
    for (let n = 2; await fs.stat(target).then(() => true, () => false); n++) target = path.join(this.dir, 'stale', `${stamp}-${n}`);
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
    for (const name of names) await fs.rename(path.join(this.dir, name), path.join(target, name));
    await fs.writeFile(path.join(target, 'REASON'), `${new Date().toISOString()} ${reason}\n`);
    return target;
  }

  /**
   * Before pg_receivewal starts: when the spool holds no WAL but the last
   * archived segment is known, an empty .partial of the next segment makes
   * pg_receivewal continue exactly there (what it would do from the
   * segment itself), whatever the server version and slot position.
   */
  async prepareStart(walSegmentSize: number): Promise<string | undefined> {
    return this.serial(async () => {
      const { completed, partials } = await listSpool(this.dir);
      const last = this.store.status.lastSegment;
      if (completed.some((n) => walFileKind(n) === 'segment') || partials.length > 0 || !last) return undefined;
      const marker = `${nextSegment(last, walSegmentSize)}.partial`;
      await fs.writeFile(path.join(this.dir, marker), '', { mode: 0o600 });
      return marker;
    });
  }

  /**
   * Get out of a spool that cannot continue against this server (the
   * seed's trap after a recovery): store what can be stored, move the rest
   * aside (never delete it), and set the restart point. Returns what was
   * done, in words, for the log and the --reset output.
   */
  reset(reason: string, position: PositionInfo, trap?: ReceiverTrap, options: { fromForkPoint?: boolean } = {}): Promise<string[]> {
    return this.serial(async () => {
      const actions: string[] = [];
      await this.sweepNow({ final: true });
      const { completed, partials: all, other } = await listSpool(this.dir);
      const status = this.store.status;
      // Empty start markers hold no WAL: they go.
      const partials: string[] = [];
      for (const name of all) {
        const empty = (await fs.stat(path.join(this.dir, name)).catch(() => undefined))?.size === 0;
        if (!empty) partials.push(name);
        else {
          await fs.rm(path.join(this.dir, name), { force: true });
          actions.push(`removed the empty start marker ${name}`);
        }
      }
      const files = [...completed, ...partials, ...other];
      let movedTo: string | undefined;
      if (files.length > 0) {
        const inRepo = new Set<string>((status.ownPartials ?? []).filter((p) => partials.includes(p)));
        movedTo = await this.moveAside(files, reason);
        const describe = (name: string) => {
          if (completed.includes(name)) return `${name} (NOT in the repositories: it could not be archived, see the errors above)`;
          if (walFileKind(name) === 'partial') return inRepo.has(name) ? `${name} (stored in the repositories as ${name})` : `${name} (the repositories keep their own copy)`;
          return name;
        };
        actions.push(`moved ${files.map(describe).join(', ')} to ${movedTo}`);
      } else if (actions.length === 0) {
        actions.push(`the spool ${this.dir} held no WAL`);
      }
      status.ownPartials = [];
      status.lastSegment = undefined;
      status.lastPartial = undefined;
      this.foreign.clear();
      this.lastPartialKey = undefined;

      if (trap?.kind === 'forked' && (options.fromForkPoint ?? true)) {
        const marker = `${walFileName(trap.timeline, trap.forkLsn, position.walSegmentSize)}.partial`;
        await fs.writeFile(path.join(this.dir, marker), '', { mode: 0o600 });
        const segmentStart = formatLsn(parseLsn(trap.forkLsn) - (parseLsn(trap.forkLsn) % BigInt(position.walSegmentSize)));
        actions.push(
          `created the empty ${marker}: pg_receivewal restarts at ${segmentStart} on timeline ${trap.timeline}, where the server's history forked (${trap.forkLsn}), and follows the server onto its current timeline`,
        );
      } else if (position.versionNum >= 150000) {
        actions.push(
          position.slotRestartLsn
            ? `pg_receivewal restarts at the replication slot's position ${position.slotRestartLsn}${position.currentLsn ? ` (the server is at ${position.currentLsn})` : ''}`
            : `pg_receivewal restarts at the server's current position${position.currentLsn ? ` ${position.currentLsn}` : ''}`,
        );
      } else if (position.timeline && position.currentLsn) {
        const marker = `${walFileName(position.timeline, position.currentLsn, position.walSegmentSize)}.partial`;
        await fs.writeFile(path.join(this.dir, marker), '', { mode: 0o600 });
        actions.push(`created the empty ${marker}: pg_receivewal restarts at the server's current position ${position.currentLsn} on timeline ${position.timeline}`);
      } else {
        actions.push("pg_receivewal restarts at the server's current position");
      }
      if (trap?.kind === 'removed') {
        actions.push(
          `the server had already removed ${trap.segment ?? 'the WAL the spool continued from'}: WAL between the spool's position and the restart point is not in the archive, so point-in-time recovery cannot cross that gap; take a new backup now (pgharbor backup ${this.server.name})`,
        );
      }
      status.lastReset = { at: new Date().toISOString(), reason, movedTo, actions };
      await this.store.save();
      return actions;
    });
  }
}
