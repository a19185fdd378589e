import path from 'node:path';
import { HarborError, archiveGet, archivePush, archivePushAsync, asyncArchiveSettings, redact, type Harbor } from '@pgharbor/core';
import { archiverStarter } from './archiver-spawn.js';
import { rememberSpool } from './async-confirm.js';
import type { WalArgs } from './wal-args.js';
import type { WalIo } from './wal-server.js';

/**
 * What archive-push and archive-get do once a Harbor is loaded, for the lean
 * path (wal-command.ts) and the full one (wal-full.ts) alike, in a call's
 * own process or in the WAL server: paths resolved against the caller's
 * `cwd`, output and errors to `io`. The exit code, or undefined when these
 * arguments need the full CLI (which then explains them) or `accept`
 * turns the loaded config down.
 */
export async function runWalWork(loadHarbor: () => Promise<Harbor>, args: WalArgs, cwd: string, io: WalIo, accept?: (harbor: Harbor) => boolean): Promise<number | undefined> {
  try {
    const harbor = await loadHarbor();
    try {
      if (accept && !accept(harbor)) return undefined; // the WAL server declines: the caller works alone
      const serverName = args.operands[0];
      const handle = harbor.server(serverName);
      if (args.command === 'archive-push') {
        if (args.operands.length !== 2) return undefined;
        const walPath = path.resolve(cwd, args.operands[1]);
        if (handle.config.archive_async) {
          const configFile = harbor.config.filepath;
          const settings = asyncArchiveSettings(harbor, handle);
          rememberSpool(configFile, serverName, settings.spoolDir);
          await archivePushAsync(settings, serverName, walPath, archiverStarter(configFile, serverName, settings.spoolDir));
          return 0;
        }
        const results = await archivePush(harbor, handle, walPath);
        // archive_command output lands in the PostgreSQL log: say nothing on success unless asked.
        if (args.json) io.stdout(JSON.stringify(results) + '\n');
        return 0;
      }
      if (args.command !== 'archive-get' || args.operands.length !== 3) return undefined;
      // Not found is routine (PostgreSQL probes for future timelines): exit 1 without a word.
      const outcome = await archiveGet(harbor, handle, args.operands[1], path.resolve(cwd, args.operands[2]));
      return outcome.found ? 0 : 1;
    } finally {
      await harbor.close();
    }
  } catch (error) {
    if (error instanceof HarborError) {
      io.stderr(redact(`ERROR: ${error.message}\n${error.hint ? `HINT: ${error.hint}\n` : ''}`));
      return error.exitCode;
    }
    io.stderr(redact(`ERROR: ${(error as Error)?.message ?? String(error)}\n`));
    return 1;
  }
}
