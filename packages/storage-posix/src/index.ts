import type { HarborPlugin, JsonSchemaObject } from '@pgharbor/core';
import { createPosixStorage } from './posix-storage.js';

export { PosixStorage, createPosixStorage, type PosixStorageOptions } from './posix-storage.js';

/**
 * Config schema of a `{ type: posix, path: … }` repository. `format: path`
 * makes the core resolve a relative path against the config file's directory.
 */
export const posixStorageSchema: JsonSchemaObject = {
  type: 'object',
  properties: {
    path: { type: 'string', minLength: 1, format: 'path', description: 'absolute directory of the repository' },
  },
  required: ['path'],
};

/** Registers the "posix" storage type: a repository on a local or mounted filesystem. */
const plugin: HarborPlugin = {
  name: 'storage-posix',
  apply(harbor) {
    harbor.storage.register('posix', {
      schema: posixStorageSchema,
      create: (options) => createPosixStorage(options as { path: string }),
    });
  },
};

export default plugin;
