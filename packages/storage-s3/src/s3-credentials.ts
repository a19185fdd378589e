import { defaultProvider } from '@aws-sdk/credential-provider-node';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';
import { ConfigError, addSecret, resolveSecret } from '@pgharbor/core';
import type { S3StorageOptions } from './s3-options.js';

/**
 * Where the keys come from, in order:
 * 1. `access_key_id` + `secret_access_key` (+ `session_token`) in the config,
 *    each a secret reference ({from_env} / {from_file}), never a literal;
 * 2. otherwise the AWS SDK's chain: AWS_ACCESS_KEY_ID & co in the environment,
 *    the shared config files (`profile`), SSO, web identity, ECS/EC2 roles.
 * Whatever the source, the values are registered for redaction as soon as
 * they are known, so no log line or error message can carry them.
 */
export function s3Credentials(options: S3StorageOptions, what: string, configDir: string): AwsCredentialIdentity | AwsCredentialIdentityProvider {
  const { access_key_id: idRef, secret_access_key: secretRef, session_token: tokenRef } = options;
  if (idRef || secretRef) {
    if (!idRef || !secretRef) {
      throw new ConfigError(
        `${what}: access_key_id and secret_access_key go together`,
        'give both (e.g. { from_env: AWS_ACCESS_KEY_ID } and { from_env: AWS_SECRET_ACCESS_KEY }), or neither to use the AWS credential chain',
      );
    }
    return {
      accessKeyId: resolveSecret(idRef, `${what}.access_key_id`, configDir),
      secretAccessKey: resolveSecret(secretRef, `${what}.secret_access_key`, configDir),
      ...(tokenRef ? { sessionToken: resolveSecret(tokenRef, `${what}.session_token`, configDir) } : {}),
    };
  }
  const chain = defaultProvider(options.profile ? { profile: options.profile } : {});
  return async () => {
    const credentials = await chain();
    addSecret(credentials.accessKeyId);
    addSecret(credentials.secretAccessKey);
    addSecret(credentials.sessionToken);
    return credentials;
  };
}
