import { ConfigError, type JsonSchema, type JsonSchemaObject, type SecretRef } from '@pgharbor/core';

/** The keys of a `{ type: s3, … }` repository entry, as validated by `s3StorageSchema`. */
export interface S3StorageOptions {
  bucket: string;
  /** Key prefix inside the bucket ("pgharbor/prod"); the repository lives below it. */
  prefix?: string;
  /** Custom endpoint for S3-compatible stores (MinIO, Ceph): "https://minio.local:9000". */
  endpoint?: string;
  region?: string;
  /** Path-style URLs (https://host/bucket/key) instead of virtual-host style (https://bucket.host/key). */
  force_path_style?: boolean;
  access_key_id?: SecretRef;
  secret_access_key?: SecretRef;
  session_token?: SecretRef;
  /** A profile of the shared AWS config/credentials files, when no keys are given. */
  profile?: string;
  /** TLS certificate verification; on unless explicitly turned off. */
  verify_tls?: boolean;
  /** PEM file of the CA(s) to trust instead of the system's. */
  ca_file?: string;
  server_side_encryption?: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
  kms_key_id?: string;
  storage_class?: string;
  /** Whether the SDK adds flexible checksums to requests: most S3-compatible stores want "when_required". */
  request_checksum?: 'when_required' | 'when_supported';
  /** Multipart part size (and single-PUT threshold): bytes, or "8MiB", "16M". */
  part_size?: number | string;
  /** Parts uploaded at once per object; memory held per upload is about part_size × (this + 1). */
  upload_concurrency?: number;
  /** Attempts per request (first try included) on throttling, 5xx and network errors. */
  max_attempts?: number;
  /** Create-only puts: "auto" probes whether the store honours If-None-Match, "on" trusts it, "off" uses HEAD then PUT. */
  conditional_put?: 'auto' | 'on' | 'off';
}

const secretRef: JsonSchema = {
  type: 'object',
  description: 'a secret from the environment ({from_env: VAR}) or a file ({from_file: PATH})',
  oneOf: [
    { type: 'object', properties: { from_env: { type: 'string', minLength: 1 } }, required: ['from_env'], additionalProperties: false },
    { type: 'object', properties: { from_file: { type: 'string', minLength: 1 } }, required: ['from_file'], additionalProperties: false },
  ],
};

const size: JsonSchema = {
  description: 'a size in bytes, or a string such as "16MiB"',
  oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^\\s*\\d+\\s*([KMG]i?B?)?\\s*$' }],
};

export const s3StorageSchema: JsonSchemaObject = {
  type: 'object',
  properties: {
    bucket: { type: 'string', minLength: 3, description: 'the bucket name' },
    prefix: { type: 'string', description: 'key prefix inside the bucket, e.g. "pgharbor/prod"' },
    endpoint: { type: 'string', pattern: '^https?://', description: 'URL of an S3-compatible endpoint, e.g. "https://minio.local:9000"' },
    region: { type: 'string', minLength: 1 },
    force_path_style: { type: 'boolean' },
    access_key_id: secretRef,
    secret_access_key: secretRef,
    session_token: secretRef,
    profile: { type: 'string', minLength: 1, description: 'a profile of ~/.aws/config and ~/.aws/credentials' },
    verify_tls: { type: 'boolean' },
    ca_file: { type: 'string', minLength: 1, format: 'path', description: 'PEM file of the CA certificates to trust' },
    server_side_encryption: { enum: ['AES256', 'aws:kms', 'aws:kms:dsse'] },
    kms_key_id: { type: 'string', minLength: 1 },
    storage_class: { type: 'string', minLength: 1, description: 'e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING' },
    request_checksum: { enum: ['when_required', 'when_supported'] },
    part_size: size,
    upload_concurrency: { type: 'integer', minimum: 1, maximum: 64 },
    max_attempts: { type: 'integer', minimum: 1, maximum: 20 },
    conditional_put: { enum: ['auto', 'on', 'off'] },
  },
  required: ['bucket'],
};

const MiB = 1024 * 1024;
/** S3's smallest part (except the last one). */
export const MIN_PART_SIZE = 5 * MiB;
/** 8 MiB × (4 + 1) ≈ 40 MiB per upload in flight; 10,000 parts allow objects up to 78 GiB. */
export const DEFAULT_PART_SIZE = 8 * MiB;
export const DEFAULT_UPLOAD_CONCURRENCY = 4;
export const DEFAULT_MAX_ATTEMPTS = 5;

/** "16MiB" / "16M" / "16384K" / 16777216 → bytes, at least S3's 5 MiB minimum part size. */
export function parsePartSize(value: number | string | undefined): number {
  if (value === undefined) return DEFAULT_PART_SIZE;
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else {
    const match = /^\s*(\d+)\s*([KMG]?)i?B?\s*$/i.exec(value);
    if (!match) throw new ConfigError(`s3 storage: part_size "${value}" is not a size`, 'write bytes, or a number with K, M or G, e.g. "16MiB"');
    bytes = Number(match[1]) * 1024 ** ' KMG'.indexOf(match[2].toUpperCase() || ' ');
  }
  if (bytes < MIN_PART_SIZE) {
    throw new ConfigError(`s3 storage: part_size ${bytes} is below S3's minimum of 5 MiB`, 'use at least "5MiB"');
  }
  return bytes;
}
