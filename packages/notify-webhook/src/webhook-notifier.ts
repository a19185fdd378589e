import { createHmac } from 'node:crypto';
import { PermanentDeliveryError, PGHARBOR_VERSION, secretRefSchema as secretRef, type HarborEvent, type JsonSchemaObject, type Notifier, type NotifierContext, type SecretRef } from '@pgharbor/core';

export interface WebhookOptions {
  /** Where to POST; a secret reference when the URL itself is the credential (chat incoming webhooks). */
  url: string | SecretRef;
  /** Extra headers; a value may be a secret reference (`Authorization: { from_env: HOOK_TOKEN }`). */
  headers?: Record<string, string | SecretRef>;
  /** Key of the HMAC-SHA256 signature header. */
  secret?: SecretRef;
}

export const webhookSchema: JsonSchemaObject = {
  type: 'object',
  properties: {
    url: { description: 'an http(s) URL, or {from_env}/{from_file} holding one', anyOf: [{ type: 'string', pattern: '^https?://' }, secretRef] },
    headers: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, secretRef] } },
    secret: { ...secretRef, description: 'HMAC-SHA256 key from {from_env: VAR} or {from_file: PATH}' },
  },
  required: ['url'],
};

/** `X-Pgharbor-Signature: sha256=<hex>` of the exact body bytes, as GitHub signs its webhooks. */
export function signature(body: string, key: string): string {
  return `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
}

/**
 * POST the event as JSON. 2xx is success; 408, 429 and 5xx are retried
 * (by the core); any other status is a permanent failure. Redirects are
 * not followed: a POST turned into a GET would lose the event.
 */
export function createWebhookNotifier(options: WebhookOptions, context: NotifierContext): Notifier {
  const reveal = (value: string | SecretRef, option: string) => (typeof value === 'string' ? value : context.secret(value, option));
  const url = new URL(reveal(options.url, 'url'));
  // Error messages name the origin only: the path of a chat webhook is its credential.
  const where = url.origin;
  const headers = Object.fromEntries(Object.entries(options.headers ?? {}).map(([name, value]) => [name, reveal(value, `headers.${name}`)]));
  const key = options.secret ? context.secret(options.secret, 'secret') : undefined;

  return {
    async send(event: HarborEvent, signal: AbortSignal): Promise<void> {
      const body = JSON.stringify(event);
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          redirect: 'manual',
          signal,
          headers: {
            'content-type': 'application/json',
            'user-agent': `pgharbor/${PGHARBOR_VERSION}`,
            'x-pgharbor-event': event.event,
            'x-pgharbor-delivery': event.id,
            ...(key ? { 'x-pgharbor-signature': signature(body, key) } : {}),
            ...headers,
          },
          body,
        });
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(`POST ${where}: ${signal.aborted ? 'timed out' : (cause?.code ?? cause?.message ?? (error as Error).message)}`);
      }
      await response.body?.cancel();
      if (response.ok) return;
      const message = `POST ${where}: HTTP ${response.status} ${response.statusText}`;
      if (response.status === 408 || response.status === 429 || response.status >= 500) throw new Error(message);
      throw new PermanentDeliveryError(message);
    },

    async check() {
      return { ok: true, detail: `POST ${where}${key ? ', signed' : ''}` };
    },
  };
}
