import type { Command } from 'commander';
import { runCheck } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .argument('<server>', 'server name from the config')
    .description('check that the server, its connections and its repositories are ready for backups')
    .action(async (serverName: string, _options, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const results = await runCheck(harbor, harbor.server(serverName));
        const failed = results.filter((r) => !r.ok);
        output(options, { server: serverName, ok: failed.length === 0, checks: results }, () =>
          [
            `Server ${serverName}:`,
            ...results.map((r) => {
              const detail = r.detail ? ` (${r.detail})` : '';
              const hint = !r.ok && r.hint ? `\n\t\tHINT: ${r.hint}` : '';
              return `\t${r.name}: ${r.ok ? 'OK' : 'FAILED'}${detail}${hint}`;
            }),
          ].join('\n'),
        );
        if (failed.length) process.exitCode = 1;
      });
    });
}
