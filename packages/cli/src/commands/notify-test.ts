import { InvalidArgumentError, type Command } from 'commander';
import { EVENT_NAMES, HarborError, type EventName } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { table } from '../format.js';

function parseEvent(value: string): EventName {
  if (!(EVENT_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`one of ${EVENT_NAMES.join(', ')}`);
  return value as EventName;
}

export function registerNotifyTest(program: Command): void {
  program
    .command('notify-test')
    .argument('<server>', 'server name from the config')
    .option('--event <event>', 'send a sample of this event to the targets that want it (default: each target gets the first event it listens for)', parseEvent)
    .description('send a sample event to every notification target of the server and report which ones got it')
    .action(async (serverName: string, cmd: { event?: EventName }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const outcomes = await harbor.notifications.test(serverName, cmd.event);
        if (outcomes.length === 0) {
          throw new HarborError(`no notification target of ${harbor.config.filepath} applies to server ${serverName}${cmd.event ? ` and event ${cmd.event}` : ''}`, {
            hint: 'add one under "notifications", or check its "servers" and "on" filters',
          });
        }
        output(options, { server: serverName, ok: outcomes.every((o) => o.ok), targets: outcomes }, () =>
          table(
            outcomes.map((o) => [
              o.target,
              `(${o.type})`,
              o.event,
              o.ok ? 'OK' : 'FAILED',
              `${(o.ms / 1000).toFixed(1)} s, ${o.attempts} attempt(s)${o.error ? `: ${o.error}` : ''}`,
            ]),
          ),
        );
        if (outcomes.some((o) => !o.ok)) process.exitCode = 1;
      });
    });
}
