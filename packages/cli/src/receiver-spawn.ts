import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { selfCommand } from './self-command.js';

/** Start `pgharbor receive-wal SERVER` detached, as `cron` does; its output goes to a log in the state dir. */
export function receiverStarter(configFile: string, stateDir = path.join(os.homedir(), '.pgharbor')): (server: string) => void {
  return (server) => {
    const dir = path.join(stateDir, server);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const log = openSync(path.join(dir, 'receive-wal.log'), 'a', 0o600);
    const [node, bin] = selfCommand();
    spawn(node, [bin, '--config', configFile, 'receive-wal', server], { detached: true, stdio: ['ignore', log, log] }).unref();
  };
}
