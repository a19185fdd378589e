import type { HarborPlugin } from '@pgharbor/core';
import { createEmailNotifier, emailSchema, type EmailOptions } from './email-notifier.js';

export { createEmailNotifier, emailSchema, type EmailOptions } from './email-notifier.js';
export { emailMessage } from './email-message.js';

/** Registers the "email" notifier type: one mail per event over SMTP. */
const plugin: HarborPlugin = {
  name: 'notify-email',
  apply(harbor) {
    harbor.notifiers.register('email', {
      schema: emailSchema,
      create: (options, context) => createEmailNotifier(options as unknown as EmailOptions, context),
    });
  },
};

export default plugin;
