import type { JsonSchema, JsonSchemaObject } from './json-schema.js';
import type { Registry } from '../registry.js';
import type { NotifierFactory } from '../notifier.js';
import { EVENT_PATTERNS } from '../notify/notification-target.js';

/**
 * The top-level `notifications:` list and `state_dir`. Each target is
 * checked against its notifier's own schema (chosen by `type`), plus the
 * keys every target has.
 */
const commonTargetProperties: Record<string, JsonSchema> = {
  type: { type: 'string', minLength: 1 },
  name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$', description: 'a name for logs, check and notify-test' },
  on: { type: 'array', minItems: 1, items: { enum: EVENT_PATTERNS }, description: 'event names, "backup.*" or "*"' },
  servers: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  timeout: { type: 'number', exclusiveMinimum: 0, description: 'seconds one delivery attempt may take' },
  retries: { type: 'integer', minimum: 0, maximum: 10 },
};

/** JSON schemas of the registered notifier types, by type. */
export function notifierSchemas(registry: Registry<NotifierFactory> | undefined): Record<string, JsonSchemaObject> {
  return Object.fromEntries((registry?.types() ?? []).map((type) => [type, registry!.get(type).schema]));
}

export function notificationProperties(notifiers: Record<string, JsonSchemaObject>): Record<string, JsonSchema> {
  const types = Object.keys(notifiers).sort();
  const target: JsonSchema = {
    type: 'object',
    properties: { ...commonTargetProperties, type: types.length ? { enum: types } : commonTargetProperties.type },
    required: ['type'],
    // The chosen notifier's schema decides which other keys are allowed.
    // (ajv refuses an empty allOf: with no notifier loaded there is nothing to add)
    ...(types.length === 0 ? {} : { allOf: types.map((type) => ({
      if: { properties: { type: { const: type } }, required: ['type'] },
      then: {
        type: 'object',
        properties: { ...commonTargetProperties, ...notifiers[type].properties },
        required: notifiers[type].required ?? [],
        additionalProperties: false,
      },
    })) }),
  };
  return {
    notifications: { type: 'array', items: target },
    state_dir: { type: 'string', minLength: 1, description: 'directory for the notification spool and failure states (default ~/.pgharbor)' },
  };
}
