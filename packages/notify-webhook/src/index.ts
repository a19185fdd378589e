import type { HarborPlugin } from '@pgharbor/core';
import { createWebhookNotifier, webhookSchema, type WebhookOptions } from './webhook-notifier.js';

export { createWebhookNotifier, signature, webhookSchema, type WebhookOptions } from './webhook-notifier.js';

/** Registers the "webhook" notifier type: the event as JSON POSTed to a URL. */
const plugin: HarborPlugin = {
  name: 'notify-webhook',
  apply(harbor) {
    harbor.notifiers.register('webhook', {
      schema: webhookSchema,
      create: (options, context) => createWebhookNotifier(options as unknown as WebhookOptions, context),
    });
  },
};

export default plugin;
