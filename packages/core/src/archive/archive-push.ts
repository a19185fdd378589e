import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import type { ArchiveEvent } from '../hooks.js';
import { ConfigError, HarborError, errorMessage } from '../errors.js';
import type { Repository } from '../repository/repository.js';
import { walFileKind } from './wal-file-name.js';
import { readWalSegmentHeader, type WalSegmentHeader } from './wal-header.js';
import { pgMajor as pgMajorOf } from '../repository/server-identity.js';
import { pushWal, walDirectory, walPlace, WalConflictError, type PushOutcome } from './wal-archive.js';
import { hashWalFile, RepositoryBody } from './wal-source.js';
import type { PutOptions } from '../storage/storage-driver.js';

export interface PushResult {
  repository: string;
  outcome: PushOutcome;
}

/**
 * `archive_command = 'pgharbor archive-push SERVER %p'`. The file goes to
 * every repository of the server; success is reported only when all of them
 * hold it, since PostgreSQL recycles the segment as soon as we say so.
 */
export async function archivePush(harbor: Harbor, server: ServerHandle, walPath: string): Promise<PushResult[]> {
  const name = path.basename(walPath);
  const kind = walFileKind(name);
  if (!kind) {
    throw new ConfigError(`archive-push: "${name}" is not a WAL file name`, "call it from archive_command as: pgharbor archive-push SERVER %p");
  }
  const event: ArchiveEvent = { server: server.name, walFile: name };
  // Hooks nobody tapped are skipped: calling one compiles it, a few ms of every push on the hot path.
  const { beforePush, pushed } = harbor.hooks.archive;
  const veto = beforePush.isUsed() ? await beforePush.promise(event) : undefined;
  if (typeof veto === 'string') throw new HarborError(`archive-push of ${name} for ${server.name} vetoed by a plugin: ${veto}`);

  // Read once: the repositories' checks start when the page header is in, hashing and encoding overlap the reading.
  const repositories = await server.repositories();
  const bodies = repositories.map((repository) => new RepositoryBody(repository.codec, walPlace(server.name, name)));
  // A file stored as it is gets copied while it is hashed (its name needs the checksum); a segment
  // only once its repository accepted its system identifier, so a wrong cluster's WAL writes nothing.
  // So the identities are read at once, and the hashing waits for their check (a ms or two).
  const stage = (index: number) => bodies[index].stage(repositories[index].storage, walDirectory(server.name, name), walPath);
  const isSegment = kind === 'segment' || kind === 'partial';
  const known = isSegment ? repositories.map((repository) => repository.readIdentity()) : [];
  for (const identity of known) identity.catch(() => {}); // awaited in the check
  if (!isSegment) repositories.forEach((_, index) => stage(index));
  let identityChecks: Promise<void>[] | undefined;
  let headerSegmentSize: number | undefined;
  let bytesRead = 0;
  const checkIdentities = async (head: Buffer) => {
    if (!isSegment) return;
    const header = readWalSegmentHeader(head);
    if (!header) return;
    headerSegmentSize = header.segmentSize;
    identityChecks = repositories.map((repository, index) => checkSegmentIdentity(repository, name, header, known[index]));
    const checked = await Promise.allSettled(identityChecks); // failures are reported per repository below
    checked.forEach((check, index) => check.status === 'fulfilled' && stage(index));
  };
  try {
    let sha256: string;
    try {
      sha256 = await hashWalFile(
        walPath,
        (chunk) => {
          bytesRead += chunk.length;
          return Promise.all(bodies.map((body) => body.push(chunk))).then(() => {});
        },
        checkIdentities,
      );
    } catch (error) {
      throw new HarborError(`archive-push: cannot read ${walPath}: ${errorMessage(error)}`, {
        hint: 'archive_command runs in the data directory; pass %p unchanged',
      });
    }
    if ((kind === 'segment' || kind === 'partial') && !identityChecks) {
      throw new HarborError(`archive-push: ${name} does not start with a WAL page header`, { hint: 'is this really a WAL segment?' });
    }
    // A completed segment is exactly as long as its own header says: archive-get refuses anything else
    // (wal-size.ts), so storing it would only defer the failure to the day of a restore.
    if (kind === 'segment' && bytesRead !== headerSegmentSize) {
      throw new HarborError(`archive-push: ${name} is ${bytesRead} bytes, but its page header gives a segment size of ${headerSegmentSize} bytes`, {
        hint: 'the file is truncated or is not a completed WAL segment; archive_command must pass %p of the segment PostgreSQL asks to archive',
      });
    }

    const results = await Promise.allSettled(
      repositories.map(async (repository, index): Promise<PushResult> => {
        await identityChecks?.[index];
        const prepared = { sha256, store: (key: string, options: PutOptions) => bodies[index].store(repository.storage, key, walPath, options) };
        return { repository: repository.name, outcome: await pushWal(repository.storage, server.name, name, prepared, repository.codec) };
      }),
    );
    const failures = results.flatMap((result, index) => (result.status === 'rejected' ? [{ repository: repositories[index], error: result.reason as Error }] : []));
    if (failures.length > 0) {
      const error = describeFailures(server.name, name, failures);
      await harbor.hooks.archive.pushFailed.promise({ ...event, repository: failures.map((f) => f.repository.location).join(', ') }, error).catch(() => {});
      throw error;
    }
    const done = results.map((result) => (result as PromiseFulfilledResult<PushResult>).value);
    if (pushed.isUsed()) await pushed.promise(event);
    return done;
  } finally {
    // Drop a copy made for nothing (already archived, refused, failed); no body stages after this.
    await Promise.all(bodies.map((body) => body.discard()));
  }
}

/**
 * The systemid coherence check of every push: the segment's header must name
 * the cluster the repository holds (the first segment of a new repository
 * records it). receive-wal runs it on what it streams too.
 */
export async function checkSegmentIdentity(repository: Repository, name: string, header: Pick<WalSegmentHeader, 'systemIdentifier' | 'magic' | 'pgMajor'>, known = repository.readIdentity()): Promise<void> {
  const { systemIdentifier, pgMajor: walMajor } = header;
  // As pgBackRest does: a page magic of no known major is no WAL we can vouch for (a newer
  // PostgreSQL, or not WAL at all), and storing it would record no version for the repository.
  if (walMajor === undefined) {
    throw new HarborError(`${name} has WAL page magic 0x${header.magic.toString(16).toUpperCase()}, which no PostgreSQL version pgharbor knows writes (${repository.name}: ${repository.location})`, {
      hint: 'pgharbor supports PostgreSQL 13 to 18: a newer PostgreSQL needs a newer pgharbor; otherwise the file is not a WAL segment',
    });
  }
  const identity = await known;
  if (!identity) {
    // First contact through the archive: remember whose WAL this is.
    await repository.checkIdentity(systemIdentifier, walMajor * 10000);
    return;
  }
  if (identity.systemIdentifier !== systemIdentifier) {
    throw new HarborError(
      `${name} belongs to the cluster with system identifier ${systemIdentifier}, but ${repository.name} (${repository.location}) holds server ${repository.server} with ${identity.systemIdentifier}`,
      { hint: 'archive_command names the wrong server, or two clusters share one server name; give each cluster its own server section' },
    );
  }
  // The WAL format changes with every major: a segment of another major cannot continue this archive.
  if (pgMajorOf(identity.pgVersion) !== walMajor) {
    throw new HarborError(
      `${name} is WAL of PostgreSQL ${walMajor} (page magic 0x${header.magic.toString(16).toUpperCase()}), but ${repository.name} (${repository.location}) holds server ${repository.server} of PostgreSQL ${pgMajorOf(identity.pgVersion)}`,
      { hint: 'after a major upgrade, archive under a new server name (and take a new backup)' },
    );
  }
  // An earlier pgharbor's identity.json in an encrypted repository, naming this cluster: signed once, here.
  if (identity.authenticated === false) await repository.checkIdentity(systemIdentifier, identity.pgVersion);
}

function describeFailures(server: string, name: string, failures: { repository: Repository; error: Error }[]): HarborError {
  // Errors that already say which repository and what to do (the system identifier check) go out as they are.
  if (failures.length === 1 && failures[0].error instanceof HarborError && failures[0].error.message.includes(`${failures[0].repository.name} (`)) return failures[0].error;
  const conflict = failures.find((f) => f.error instanceof WalConflictError);
  if (conflict) {
    return new HarborError(`archive-push of ${name} for ${server}: ${conflict.error.message}; nothing was overwritten`, {
      hint: 'two clusters (or a restored copy) archive under one server name; find the other writer before anything else',
    });
  }
  const where = failures.map((f) => `${f.repository.name} (${f.repository.location}): ${errorMessage(f.error)}`).join('; ');
  const hints = failures.map((f) => (f.error instanceof HarborError ? f.error.hint : undefined)).filter(Boolean);
  return new HarborError(`archive-push of ${name} for ${server} failed in ${where}`, {
    hint: `PostgreSQL keeps the segment and retries; fix the repository, the WAL is not lost${hints.length ? ` (${hints.join('; ')})` : ''}`,
  });
}
