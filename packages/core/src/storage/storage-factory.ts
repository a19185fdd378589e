import type { StorageDriver } from './storage-driver.js';
import type { JsonSchemaObject } from '../config/json-schema.js';
import type { Logger } from '../log.js';

/** What a storage plugin registers under its config `type`. */
export interface StorageFactory {
  /**
   * JSON schema of this driver's repository options (the keys beside
   * `type` in a repository entry). Validated before `create` is called.
   */
  schema: JsonSchemaObject;
  /**
   * Open a driver. `options` were validated against `schema`; relative
   * paths are already resolved against the config file's directory when
   * the schema marks them with `"format": "path"`.
   */
  create(options: Record<string, unknown>, context: StorageContext): StorageDriver | Promise<StorageDriver>;
}

export interface StorageContext {
  logger: Logger;
  /** Directory of the config file, for relative paths. */
  configDir: string;
}
