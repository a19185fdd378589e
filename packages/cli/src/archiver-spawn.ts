import { mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { selfCommand } from './self-command.js';

/**
 * Start the async archiver as a detached process that outlives this
 * archive-push (PostgreSQL waits for archive-push, not for the archiver);
 * its output goes to archiver.log in the spool.
 */
export function archiverStarter(configFile: string, server: string, spoolDir: string): (pgWalDir: string) => void {
  return (pgWalDir) => {
    mkdirSync(spoolDir, { recursive: true, mode: 0o700 });
    const log = openSync(path.join(spoolDir, 'archiver.log'), 'a', 0o600);
    const [node, bin] = selfCommand();
    // Loaded only when an archiver must start: node:child_process costs every archive-push several ms.
    const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
    spawn(node, [bin, '--config', configFile, 'archive-push-async', server, '--pg-wal', pgWalDir], {
      detached: true,
      stdio: ['ignore', log, log],
    }).unref();
  };
}
