import type { HarborPlugin } from '@pgharbor/core';
import { basebackupMethod } from './basebackup-method.js';
import { basebackupChecks } from './basebackup-checks.js';

export { basebackupMethod } from './basebackup-method.js';
export { baseBackupCommand, parseMaxRate, parseServerCompression, quoteLiteral, checkLabel } from './base-backup-command.js';
export { readMessages, MAX_MESSAGE } from './protocol-messages.js';

/** Registers the "basebackup" method and its checks. */
const plugin: HarborPlugin = {
  name: 'method-basebackup',
  apply(harbor) {
    harbor.methods.register('basebackup', basebackupMethod);
    harbor.hooks.check.tapPromise('method-basebackup', basebackupChecks);
  },
};

export default plugin;
