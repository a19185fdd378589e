import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, errorMessage, type Logger } from '@pgharbor/core';
import { s3Credentials } from './s3-credentials.js';
import { DEFAULT_MAX_ATTEMPTS, type S3StorageOptions } from './s3-options.js';

// The SDK warns on every start on Node < 22; pgharbor pins SDK versions that support Node 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Sockets per client: parallel restore jobs, multipart parts and listings share them. */
const MAX_SOCKETS = 64;

/**
 * Build the S3 client for one repository: endpoint and addressing style,
 * TLS trust, credentials, checksums and retries.
 */
export function createS3Client(options: S3StorageOptions, context: { logger: Logger; configDir: string; location: string }): S3Client {
  const what = `s3 repository ${context.location}`;
  const checksums = options.request_checksum === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  return new S3Client({
    region: options.region ?? 'us-east-1',
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.force_path_style ?? false,
    credentials: s3Credentials(options, what, context.configDir),
    // "standard": exponential backoff with jitter on throttling (503 SlowDown,
    // 429), 5xx, timeouts and connection resets. Parts and small objects are
    // buffers, so every request can be replayed.
    maxAttempts: options.max_attempts ?? DEFAULT_MAX_ATTEMPTS,
    retryMode: 'standard',
    // With the SDK's default (WHEN_SUPPORTED) a streamed PutObject carries
    // aws-chunked framing that many S3-compatible stores store verbatim.
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...tlsOptions(options, what, context.logger) }),
      connectionTimeout: 10_000,
      // A stalled transfer (no byte either way for this long) fails and is retried.
      socketTimeout: 120_000,
    },
  });
}

/** TLS: verified by default against the system's CAs, or `ca_file`; off only when explicitly asked, with a warning. */
function tlsOptions(options: S3StorageOptions, what: string, logger: Logger): https.AgentOptions {
  const tls: https.AgentOptions = {};
  if (options.ca_file) {
    try {
      tls.ca = readFileSync(options.ca_file);
    } catch (error) {
      throw new ConfigError(`${what}: cannot read ca_file ${options.ca_file}: ${errorMessage(error)}`, 'give the PEM file of the CA that signed the endpoint certificate');
    }
  }
  if (options.verify_tls === false) {
    if (options.endpoint?.startsWith('https:')) {
      logger.warn(
        `${what}: TLS certificate verification is OFF (verify_tls: false); anyone on the network path can read or alter backups. ` +
          'Prefer ca_file with the certificate of the endpoint or its CA.',
      );
    }
    tls.rejectUnauthorized = false;
  }
  return tls;
}
