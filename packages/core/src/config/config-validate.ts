import path from 'node:path';
import { createRequire } from 'node:module';
import type { Ajv as AjvType, ErrorObject, ValidateFunction } from 'ajv';
import { ConfigError } from '../errors.js';
import { parseConninfo } from '../postgres/conninfo.js';
import type { JsonSchema, JsonSchemaObject } from './json-schema.js';
import type { LoadedConfig, PgharborConfig, RepositoryConfig, ServerConfig } from './config-types.js';
import { buildConfigSchema } from './config-schema.js';
import type { Registry } from '../registry.js';
import type { StorageFactory } from '../storage/storage-factory.js';
import type { BackupMethod } from '../backup/backup-method.js';
import type { NotifierFactory } from '../notifier.js';
import { notifierSchemas } from './notification-schema.js';
import { REPOSITORY_CODEC_KEYS, resolveCodecSettings } from '../codec/codec-settings.js';

export interface SchemaSources {
  storage: Registry<StorageFactory>;
  methods: Registry<BackupMethod>;
  notifiers?: Registry<NotifierFactory>;
}

const DEFAULT_METHOD = 'basebackup';

/**
 * Validate a raw config against the core schema plus every loaded plugin's
 * schema, apply `defaults`, and resolve relative paths. Errors name the
 * file, the path of the key ("servers.pga.repositories[0].path") and what
 * is allowed there.
 */
export function validateConfig(raw: unknown, filepath: string, sources: SchemaSources): LoadedConfig {
  const dir = path.dirname(filepath);
  const methodOptions: Record<string, JsonSchema> = {};
  for (const type of sources.methods.types()) Object.assign(methodOptions, sources.methods.get(type).serverOptions ?? {});

  check(buildConfigSchema(methodOptions, notifierSchemas(sources.notifiers)), raw, filepath, '');
  const config = structuredClone(raw) as PgharborConfig;

  for (const [name, server] of Object.entries(config.servers)) {
    const merged = { ...config.defaults, ...server } as ServerConfig;
    merged.method ??= DEFAULT_METHOD;
    const where = `servers.${name}`;
    if (!merged.conninfo) throw configError(filepath, `${where}.conninfo`, 'is missing', 'give the libpq connection string of the server, e.g. "host=pga user=barman dbname=postgres"');
    if (!merged.repositories) throw configError(filepath, `${where}.repositories`, 'is missing', 'list at least one repository, e.g. [{ type: posix, path: /var/lib/pgharbor }]');
    if (!sources.methods.has(merged.method)) {
      throw configError(filepath, `${where}.method`, `"${merged.method}" is not a known backup method`, `allowed: ${sources.methods.types().join(', ')}`);
    }
    merged.repositories = merged.repositories.map((repo, index) =>
      validateRepository(repo, `${where}.repositories[${index}]`, filepath, dir, sources.storage),
    );
    // Levels depend on the algorithm: checked here, before anything runs.
    merged.repositories.forEach((repo, index) => {
      try {
        resolveCodecSettings(merged, repo, `${where}.repositories[${index}]`);
      } catch (error) {
        throw new ConfigError(`${filepath}: ${(error as Error).message}`, (error as ConfigError).hint);
      }
    });
    // Parsed now, as libpq would: an unknown keyword is a config error (exit 2) before anything runs, and an inline password is redacted from then on.
    for (const key of ['conninfo', 'streaming_conninfo'] as const) {
      if (merged[key] === undefined) continue;
      try {
        parseConninfo(merged[key]);
      } catch (error) {
        throw configError(filepath, `${where}.${key}`, (error as Error).message.replace(/^conninfo: /, ''), (error as ConfigError).hint);
      }
    }
    config.servers[name] = merged;
  }
  return { config, filepath, dir };
}

function validateRepository(
  repo: RepositoryConfig,
  where: string,
  filepath: string,
  dir: string,
  storage: Registry<StorageFactory>,
): RepositoryConfig {
  if (!storage.has(repo.type)) {
    throw configError(filepath, `${where}.type`, `"${repo.type}" is not a known storage type`, `allowed: ${storage.types().join(', ')} (or load a storage plugin with "plugins")`);
  }
  const schema = storage.get(repo.type).schema;
  const { type, name, retention, ...rest } = repo;
  // compression, compression_level, encryption: the core's (checked by the core schema), not the driver's.
  const codec: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) ((REPOSITORY_CODEC_KEYS as readonly string[]).includes(key) ? codec : options)[key] = value;
  const withCommon: JsonSchemaObject = { additionalProperties: false, ...schema };
  check(withCommon, options, filepath, where);
  // Paths marked "format: path" are relative to the config file, not the working directory.
  for (const [key, prop] of Object.entries(schema.properties)) {
    const value = options[key];
    if (prop.format === 'path' && typeof value === 'string' && !path.isAbsolute(value)) options[key] = path.resolve(dir, value);
  }
  return { type, ...(name === undefined ? {} : { name }), ...(retention === undefined ? {} : { retention }), ...options, ...codec };
}

// Created on first use, not at import: the WAL hot path never validates.
let ajvInstance: AjvType | undefined;
function ajv(): AjvType {
  if (!ajvInstance) {
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    // optimize: false: ajv's code optimizer took ~0.2 s of every command's start-up (the
    // config schema is compiled afresh per process), to speed up one validation of a small file.
    ajvInstance = new Ajv({ allErrors: true, verbose: true, strict: false, code: { optimize: false } });
    ajvInstance.addFormat('path', true);
  }
  return ajvInstance;
}

/**
 * Compiled validators by schema text: the schemas are built afresh for each
 * load, and ajv caches by object. A process that loads configs again and
 * again (the WAL server, once per call) compiled ~40 ms per load otherwise.
 */
const validators = new Map<string, ValidateFunction>();

function check(schema: JsonSchemaObject, value: unknown, filepath: string, base: string): void {
  const text = JSON.stringify(schema);
  let validate = validators.get(text);
  if (!validate) validators.set(text, (validate = ajv().compile(schema)));
  if (validate(value)) return;
  const error = pickError(validate.errors ?? []);
  throw describe(error, filepath, base);
}

/**
 * ajv reports every problem (and every oneOf branch); show the one a user
 * most likely means: the deepest, and at equal depth an unknown key (a typo)
 * before the missing key it was meant to be.
 */
const keywordRank: Record<string, number> = { additionalProperties: 0, type: 1, enum: 2, required: 3 };
function pickError(errors: ErrorObject[]): ErrorObject {
  const rank = (e: ErrorObject) => keywordRank[e.keyword] ?? 4;
  return [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length || rank(a) - rank(b))[0];
}

function describe(error: ErrorObject, filepath: string, base: string): ConfigError {
  const at = joinPath(base, error.instancePath, false);
  const parent = error.parentSchema as JsonSchema | undefined;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys((parent?.properties as object) ?? {}).sort();
      return configError(filepath, joinPath(at, '/' + key), 'is not a known setting', `allowed here: ${allowed.join(', ') || 'nothing'}`);
    }
    case 'required': {
      const key = (error.params as { missingProperty: string }).missingProperty;
      return configError(filepath, joinPath(at, '/' + key), 'is missing', 'add it');
    }
    case 'enum':
      return configError(filepath, at, 'has a value that is not allowed', `allowed: ${((error.params as { allowedValues: unknown[] }).allowedValues).join(', ')}`);
    case 'type':
      return configError(filepath, at, `must be ${(error.params as { type: string }).type}`, describeSchema(parent));
    case 'propertyNames':
      return configError(filepath, at, 'has an invalid name', 'server names use letters, digits, "_", "." and "-"');
    default:
      return configError(filepath, at, error.message ?? 'is invalid', describeSchema(parent));
  }
}

function describeSchema(schema: JsonSchema | undefined): string | undefined {
  return typeof schema?.description === 'string' ? `expected ${schema.description}` : undefined;
}

function joinPath(base: string, instancePath: string, display = true): string {
  let out = base;
  for (const part of instancePath.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  }
  return out || (display ? '(top level)' : '');
}

function configError(filepath: string, at: string, problem: string, hint?: string): ConfigError {
  return new ConfigError(`${filepath}: ${at || 'the top level'} ${problem}`, hint);
}
