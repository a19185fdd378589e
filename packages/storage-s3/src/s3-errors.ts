import { HarborError, errorMessage } from '@pgharbor/core';

/** What the SDK attaches to a service error. */
interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

export function httpStatus(error: unknown): number | undefined {
  return (error as SdkError | undefined)?.$metadata?.httpStatusCode;
}

/** The S3 error code ("NoSuchKey", "PreconditionFailed") or Node error code ("ECONNREFUSED"). */
export function s3Code(error: unknown): string | undefined {
  const e = error as SdkError | undefined;
  return e?.Code ?? (typeof e?.code === 'string' ? e.code : undefined) ?? (e?.cause ? s3Code(e.cause) : undefined) ?? e?.name;
}

export function isNotFound(error: unknown): boolean {
  const code = s3Code(error);
  return code === 'NoSuchKey' || code === 'NotFound' || (httpStatus(error) === 404 && code !== 'NoSuchBucket');
}

export function isPreconditionFailed(error: unknown): boolean {
  return httpStatus(error) === 412 || s3Code(error) === 'PreconditionFailed';
}

/** AWS answers 409 when two conditional writes to one key overlap: one of them should retry. */
export function isConditionalConflict(error: unknown): boolean {
  return httpStatus(error) === 409 && s3Code(error) === 'ConditionalRequestConflict';
}

/**
 * A failed S3 call as a HarborError: the repository, what failed, the store's
 * (or the network's) error, and what to check. Never includes credentials:
 * SDK messages don't carry them, and the core logger redacts every secret
 * registered by resolveSecret anyway.
 */
export function s3Error(location: string, what: string, error: unknown): Error {
  if (error instanceof HarborError) return error;
  const code = s3Code(error);
  const status = httpStatus(error);
  const detail = [code, status ? `HTTP ${status}` : undefined].filter(Boolean).join(', ');
  return new HarborError(`s3 repository ${location}: ${what}: ${errorMessage(error)}${detail ? ` (${detail})` : ''}`, {
    hint: hintFor(code, status),
    cause: error,
  });
}

function hintFor(code: string | undefined, status: number | undefined): string | undefined {
  switch (code) {
    case 'NoSuchBucket':
      return 'the bucket does not exist: create it, or fix "bucket" (and "endpoint"/"region")';
    case 'InvalidAccessKeyId':
    case 'SignatureDoesNotMatch':
    case 'InvalidToken':
    case 'ExpiredToken':
    case 'CredentialsProviderError':
      return 'check the credentials: access_key_id/secret_access_key in the config, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the AWS profile';
    case 'AccessDenied':
      return 'the credentials work but may not use this bucket/prefix: the policy needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket';
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
      return 'the bucket is in another region: set "region" to the bucket\'s region';
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'TimeoutError':
      return 'the S3 endpoint cannot be reached: check "endpoint", the network and that the store is running';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return 'the endpoint\'s TLS certificate is not signed by a trusted CA: set ca_file to the CA (or the self-signed certificate); verify_tls: false disables the check';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'the endpoint\'s TLS certificate is for another host name: use the name the certificate was issued for in "endpoint"';
    case 'CERT_HAS_EXPIRED':
      return 'the endpoint\'s TLS certificate has expired';
  }
  if (status === 501) return 'the store does not implement this S3 feature';
  if (status !== undefined && status >= 500) return 'the store failed after retries; try again later, or raise max_attempts';
  return undefined;
}
