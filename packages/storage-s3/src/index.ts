import type { HarborPlugin } from '@pgharbor/core';
import { s3StorageSchema, type S3StorageOptions } from './s3-options.js';

export { s3StorageSchema, parsePartSize, type S3StorageOptions } from './s3-options.js';
export type { S3Storage } from './s3-storage.js';

/**
 * Registers the "s3" storage type. The driver (and the AWS SDK behind it,
 * ~100 ms to load) is imported only when an S3 repository is opened, so that
 * commands on other repositories — archive-push above all — don't pay for it.
 */
const plugin: HarborPlugin = {
  name: 'storage-s3',
  apply(harbor) {
    harbor.storage.register('s3', {
      schema: s3StorageSchema,
      create: async (options, context) => {
        const { createS3Storage } = await import('./s3-storage.js');
        return createS3Storage(options as unknown as S3StorageOptions, context);
      },
    });
  },
};

export default plugin;
