import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Harbor } from '../harbor.js';
import type { ServerHandle } from '../server-handle.js';
import { ConfigError, HarborError, errorMessage } from '../errors.js';
import { walFileKind } from './wal-file-name.js';
import { openArchivedWal } from './wal-archive.js';

export type GetOutcome = { found: true; repository: string; served: string } | { found: false };

/**
 * `restore_command = 'pgharbor archive-get SERVER %f %p'`. Writes the file
 * atomically and verified; a segment that was never completed is served
 * from its .partial copy (what the seed's `cp %f %p || cp %f.partial %p`
 * did by hand). Missing files are normal: PostgreSQL probes for history
 * files of timelines that do not exist yet.
 */
export async function archiveGet(harbor: Harbor, server: ServerHandle, name: string, destination: string): Promise<GetOutcome> {
  const kind = walFileKind(name);
  if (!kind) throw new ConfigError(`archive-get: "${name}" is not a WAL file name`, 'call it from restore_command as: pgharbor archive-get SERVER %f %p');
  const candidates = kind === 'segment' ? [name, `${name}.partial`] : [name];
  const failures: string[] = [];
  for (const candidate of candidates) {
    for (const repository of await server.repositories()) {
      try {
        const opened = await openArchivedWal(repository.storage, server.name, candidate, repository.codec);
        if (!opened) continue;
        await writeWalVerified(opened.stream, destination, opened.wal.sha256, candidate);
        await harbor.hooks.archive.fetched.promise({ server: server.name, walFile: candidate, repository: repository.location });
        return { found: true, repository: repository.name, served: candidate };
      } catch (error) {
        failures.push(`${repository.name}: ${errorMessage(error)}`);
      }
    }
  }
  if (failures.length > 0) {
    const error = new HarborError(`archive-get of ${name} for ${server.name} failed: ${failures.join('; ')}`, { hint: 'check the repositories with: pgharbor check ' + server.name });
    await harbor.hooks.archive.fetchFailed.promise({ server: server.name, walFile: name }, error).catch(() => {});
    throw error;
  }
  return { found: false };
}

/** Write an archived WAL file atomically (temporary name, fsync, rename), refusing bytes that do not match its sha256. */
export async function writeWalVerified(stream: AsyncIterable<Buffer>, destination: string, sha256: string | undefined, name: string): Promise<void> {
  const target = path.resolve(destination);
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.pgharbor-${process.pid}`);
  const hash = createHash('sha256');
  const handle = await fs.open(temporary, 'w', 0o600);
  try {
    for await (const chunk of stream) {
      hash.update(chunk);
      await handle.write(chunk);
    }
    if (sha256 && hash.digest('hex') !== sha256) throw new Error(`${name} does not match its checksum: the archived copy is damaged`);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await fs.rename(temporary, target);
}
