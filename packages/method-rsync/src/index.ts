import type { HarborPlugin } from '@pgharbor/core';
import { rsyncMethod } from './rsync-method.js';
import { rsyncChecks } from './rsync-checks.js';

export { rsyncMethod, rsyncServerOptions, type ReuseMode } from './rsync-method.js';
export { parseSshCommand, sshArgv, rsyncShell } from './ssh-command.js';
export { parseListLine } from './rsync-runner.js';
export { planCopy } from './copy-plan.js';

/** Registers the "rsync" method (pg_backup_start, rsync over ssh, pg_backup_stop) and its checks. */
const plugin: HarborPlugin = {
  name: 'method-rsync',
  apply(harbor) {
    harbor.methods.register('rsync', rsyncMethod);
    harbor.hooks.check.tapPromise('method-rsync', rsyncChecks);
  },
};

export default plugin;
