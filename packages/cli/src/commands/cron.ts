import type { Command } from 'commander';
import { cronPass } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parsePositiveInt } from '../parse-options.js';
import { receiverStarter } from '../receiver-spawn.js';

export function registerCron(program: Command): void {
  program
    .command('cron')
    .option('--loop', 'run a pass every --interval seconds until stopped (for supervisors that prefer one long-running process)')
    .option('--interval <seconds>', 'seconds between passes with --loop', parsePositiveInt, 60)
    .description('one maintenance pass over every server: receive-wal where streaming_archiver is on, retention where it is automatic')
    .action(async (cmd: { loop?: boolean; interval: number }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      let stop = false;
      const onSignal = () => (stop = true);
      process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
      try {
        do {
          await withHarbor(options, async (harbor) => {
            const results = await cronPass(harbor, { startReceiver: receiverStarter(harbor.config.filepath, harbor.stateDir()) });
            output(options, results, () => results.map((r) => r.summary).join('\n'));
            if (results.some((r) => r.errors.length)) process.exitCode = 1;
          });
          for (let waited = 0; cmd.loop && !stop && waited < cmd.interval * 10; waited++) await new Promise((r) => setTimeout(r, 100));
        } while (cmd.loop && !stop);
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      }
    });
}
