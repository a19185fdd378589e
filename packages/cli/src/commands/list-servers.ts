import type { Command } from 'commander';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { table } from '../format.js';

export function registerListServers(program: Command): void {
  program
    .command('list-servers')
    .description('list the servers in the config file')
    .action(async (_options, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const servers = harbor.serverNames().map((name) => {
          const config = harbor.config.config.servers[name];
          return { name, description: config.description ?? '', method: config.method, repositories: config.repositories.map((r) => r.name ?? r.type) };
        });
        output(options, servers, () => table(servers.map((s) => [s.name, '-', s.description || `${s.method} into ${s.repositories.join(', ')}`])));
      });
    });
}
