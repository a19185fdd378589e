import { ConfigError } from '../errors.js';
import type { SecretRef } from '../config/config-types.js';

/**
 * How a repository stores bytes: compression (per file, in independent
 * frames of at most 1 MiB of original data) and client-side encryption.
 * Settings are per repository entry; `compression`/`compression_level` may
 * also be given per server (or in `defaults`) and apply to every
 * repository of the server that does not set its own.
 */
export type CompressionAlgorithm = 'none' | 'gzip' | 'lz4' | 'zstd';
export type EncryptionCipher = 'none' | 'aes-256-gcm';

export const COMPRESSION_ALGORITHMS: readonly CompressionAlgorithm[] = ['none', 'gzip', 'lz4', 'zstd'];

/**
 * The default when nothing is configured: zstd at level 1. Measured here
 * (docs/encryption.md, "Compression"): lz4 and zstd-1 both compress faster
 * than sha256 hashes, so neither slows a backup (whole backups of pgbench
 * data took the same time or less with zstd-1), while zstd-1 stores 2.4
 * times less than lz4 on pgbench data and restores faster here.
 */
export const DEFAULT_COMPRESSION: CompressionAlgorithm = 'zstd';

/** Level used when an algorithm is named without `compression_level`. */
export const DEFAULT_LEVELS: Record<CompressionAlgorithm, number | undefined> = { none: undefined, gzip: 6, lz4: undefined, zstd: 1 };
const LEVEL_RANGES: Record<CompressionAlgorithm, [number, number] | undefined> = { none: undefined, gzip: [1, 9], lz4: undefined, zstd: [1, 19] };

/** File name suffix of a compressed WAL object. */
export const COMPRESSION_SUFFIX: Record<CompressionAlgorithm, string> = { none: '', gzip: '.gz', lz4: '.lz4', zstd: '.zst' };
/** File name suffix of an encrypted WAL object (after the compression suffix). */
export const ENCRYPTION_SUFFIX = '.enc';

/** Keys of a repository entry that belong to the core, not to the storage driver. */
export const REPOSITORY_CODEC_KEYS = ['compression', 'compression_level', 'encryption'] as const;

export interface EncryptionConfig {
  /** Only aes-256-gcm today. */
  cipher?: EncryptionCipher;
  /** A passphrase: the key is derived from it with scrypt (salt and parameters stored in the repository). */
  passphrase?: SecretRef;
  /** A key file's content: 32 random bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`). */
  key?: SecretRef;
}

export interface CodecSettings {
  compression: CompressionAlgorithm;
  level?: number;
  encryption?: { cipher: 'aes-256-gcm'; passphrase?: SecretRef; key?: SecretRef };
}

/**
 * Resolve and check a repository's codec settings (also on the lean WAL
 * path, where the config is not validated by the schema).
 */
export function resolveCodecSettings(server: Record<string, unknown>, repo: Record<string, unknown>, where: string): CodecSettings {
  const serverWhere = where.replace(/\.repositories\[\d+\]$/, '');
  const fromRepo = repo.compression !== undefined;
  const compression = (fromRepo ? repo.compression : (server.compression ?? DEFAULT_COMPRESSION)) as CompressionAlgorithm;
  // A level belongs to its algorithm: a repository that names its own algorithm does not inherit the server's level.
  const levelFromRepo = repo.compression_level !== undefined || fromRepo;
  const level = (levelFromRepo ? repo.compression_level : server.compression_level) as number | undefined;
  if (!COMPRESSION_ALGORITHMS.includes(compression)) {
    throw new ConfigError(`${fromRepo ? where : serverWhere}.compression: unknown algorithm "${String(compression)}"`, `allowed: ${COMPRESSION_ALGORITHMS.join(', ')}`);
  }
  checkLevel(compression, level, `${levelFromRepo ? where : serverWhere}.compression_level`);
  const settings: CodecSettings = { compression, level: level ?? DEFAULT_LEVELS[compression] };
  const encryption = repo.encryption as EncryptionConfig | 'none' | undefined;
  if (encryption !== undefined && encryption !== 'none') {
    if (typeof encryption !== 'object' || encryption === null) throw new ConfigError(`${where}.encryption must be an object`, 'e.g. { passphrase: { from_env: PGHARBOR_PASSPHRASE } }');
    const cipher = encryption.cipher ?? 'aes-256-gcm';
    if (cipher !== 'aes-256-gcm') throw new ConfigError(`${where}.encryption.cipher: unknown cipher "${String(cipher)}"`, 'allowed: aes-256-gcm');
    if (Boolean(encryption.passphrase) === Boolean(encryption.key)) {
      throw new ConfigError(`${where}.encryption needs exactly one of passphrase or key`, 'e.g. passphrase: { from_env: PGHARBOR_PASSPHRASE }, or key: { from_file: /etc/pgharbor/repo.key }');
    }
    settings.encryption = { cipher, passphrase: encryption.passphrase, key: encryption.key };
  }
  return settings;
}

function checkLevel(compression: CompressionAlgorithm, level: unknown, where: string): void {
  if (level === undefined) return;
  const range = LEVEL_RANGES[compression];
  if (!range) {
    throw new ConfigError(`${where}: ${compression} has no compression levels`, compression === 'lz4' ? 'remove compression_level, or use zstd (levels 1-19) for smaller backups' : 'remove compression_level');
  }
  if (typeof level !== 'number' || !Number.isInteger(level) || level < range[0] || level > range[1]) {
    throw new ConfigError(`${where}: ${String(level)} is not a ${compression} level`, `allowed: ${range[0]}-${range[1]}`);
  }
}

/** JSON schema of the codec keys, for the config validator. */
export function codecSchemaProperties(secretRef: object): Record<string, Record<string, unknown>> {
  return {
    compression: { enum: [...COMPRESSION_ALGORITHMS], description: 'none, gzip, lz4 or zstd' },
    compression_level: { type: 'integer', minimum: 1, maximum: 19, description: 'gzip 1-9, zstd 1-19 (lz4 has none)' },
    encryption: {
      anyOf: [
        { const: 'none' },
        {
          type: 'object',
          properties: { cipher: { enum: ['aes-256-gcm'] }, passphrase: secretRef, key: secretRef },
          additionalProperties: false,
        },
      ],
      description: '{ passphrase: SECRET } or { key: SECRET }',
    },
  };
}
