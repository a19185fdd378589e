import type { HarborPlugin } from '@pgharbor/core';
import { commandSchema, createCommandNotifier, type CommandOptions } from './command-notifier.js';

export { commandSchema, createCommandNotifier, eventEnv, type CommandOptions } from './command-notifier.js';

/** Registers the "command" notifier type: an executable run with the event on stdin. */
const plugin: HarborPlugin = {
  name: 'notify-command',
  apply(harbor) {
    harbor.notifiers.register('command', {
      schema: commandSchema,
      create: (options, context) => createCommandNotifier(options as unknown as CommandOptions, context),
    });
  },
};

export default plugin;
