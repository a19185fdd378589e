import type { JsonSchema, JsonSchemaObject } from './json-schema.js';
import { hookScriptProperties } from './hook-script-schema.js';
import { archiveServerProperties } from './archive-schema.js';
import { retentionRepositoryProperties, retentionServerProperties } from './retention-schema.js';
import { streamingServerProperties } from './streaming-schema.js';
import { backupTypeServerProperties } from './backup-type-schema.js';
import { notificationProperties } from './notification-schema.js';
import { codecSchemaProperties } from '../codec/codec-settings.js';

/**
 * The core's part of the config schema. Plugins add theirs: each backup
 * method contributes server options, each storage driver the options of a
 * repository entry (validated per entry, see config-validate.ts).
 */
/** Schema of a secret reference, for plugins' options too. */
export const secretRef: JsonSchema = {
  type: 'object',
  description: 'a secret from the environment ({from_env: VAR}), a file ({from_file: PATH}) or a command ({from_command: [PROGRAM, ARG...]})',
  oneOf: [
    { type: 'object', properties: { from_env: { type: 'string', minLength: 1 } }, required: ['from_env'], additionalProperties: false },
    { type: 'object', properties: { from_file: { type: 'string', minLength: 1 } }, required: ['from_file'], additionalProperties: false },
    {
      type: 'object',
      properties: { from_command: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } } },
      required: ['from_command'],
      additionalProperties: false,
    },
  ],
};

const repositoryEntry: JsonSchema = {
  type: 'object',
  properties: {
    type: { type: 'string', minLength: 1 },
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
    ...retentionRepositoryProperties,
    // compression, compression_level, encryption: the core's, checked here; the rest is the driver's.
    ...codecSchemaProperties(secretRef),
  },
  required: ['type'],
  // The driver's own schema checks the remaining keys.
  additionalProperties: true,
};

export const coreServerProperties: Record<string, JsonSchema> = {
  description: { type: 'string' },
  conninfo: { type: 'string', minLength: 1 },
  streaming_conninfo: { type: 'string', minLength: 1 },
  password: secretRef,
  streaming_password: secretRef,
  method: { type: 'string', minLength: 1 },
  pg_bin_dir: { type: 'string', minLength: 1 },
  repositories: { type: 'array', minItems: 1, items: repositoryEntry },
  // Defaults for the server's repositories that do not set their own.
  compression: codecSchemaProperties(secretRef).compression,
  compression_level: codecSchemaProperties(secretRef).compression_level,
  ...hookScriptProperties,
  ...archiveServerProperties,
  ...retentionServerProperties,
  ...streamingServerProperties,
  ...backupTypeServerProperties,
};

export function buildConfigSchema(methodServerOptions: Record<string, JsonSchema>, notifiers: Record<string, JsonSchemaObject> = {}): JsonSchemaObject {
  const serverProperties = { ...coreServerProperties, ...methodServerOptions };
  return {
    type: 'object',
    properties: {
      plugins: {
        type: 'array',
        items: {
          anyOf: [
            { type: 'string', minLength: 1 },
            {
              type: 'object',
              properties: { module: { type: 'string', minLength: 1 }, options: { type: 'object' } },
              required: ['module'],
              additionalProperties: false,
            },
          ],
        },
      },
      defaults: { type: 'object', properties: serverProperties, additionalProperties: false },
      servers: {
        type: 'object',
        minProperties: 1,
        propertyNames: { pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' },
        additionalProperties: { type: 'object', properties: serverProperties, additionalProperties: false },
      },
      log_level: { enum: ['debug', 'info', 'warn', 'error'] },
      ...notificationProperties(notifiers),
    },
    required: ['servers'],
    additionalProperties: false,
  };
}
