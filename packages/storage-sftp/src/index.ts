import type { HarborPlugin } from '@pgharbor/core';
import { sftpStorageSchema, type SftpStorageOptions } from './sftp-options.js';

export { sftpStorageSchema, type SftpStorageOptions } from './sftp-options.js';
export { parseKnownHosts, verifyHostKey, fingerprint, type KnownHost, type HostKeyVerdict } from './known-hosts.js';
export type { SftpStorage } from './sftp-storage.js';

/**
 * Registers the "sftp" storage type. The driver (and ssh2 behind it) is
 * imported only when an SFTP repository is opened, so that commands on
 * other repositories don't pay for loading it.
 */
const plugin: HarborPlugin = {
  name: 'storage-sftp',
  apply(harbor) {
    harbor.storage.register('sftp', {
      schema: sftpStorageSchema,
      create: async (options, context) => {
        const { createSftpStorage } = await import('./sftp-storage.js');
        return createSftpStorage(options as unknown as SftpStorageOptions, context);
      },
    });
  },
};

export default plugin;
