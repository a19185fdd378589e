import type { Command } from 'commander';
import { HarborError, sealManifests } from '@pgharbor/core';
import { output, withHarbor, type GlobalOptions } from '../cli-context.js';
import { parseRepo } from '../parse-options.js';

export function registerSealManifests(program: Command): void {
  program
    .command('seal-manifests')
    .argument('<server>', 'server name from the config')
    .option('--repo <n>', 'repository number (1-based); default the first', parseRepo)
    .option('--dry-run', 'only list the manifests that would be sealed')
    .description('accept the manifests an earlier pgharbor wrote in the clear in an encrypted repository, by sealing them with its key')
    .action(async (serverName: string, cmd: { repo?: number; dryRun?: boolean }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      await withHarbor(options, async (harbor) => {
        const result = await sealManifests(harbor.server(serverName), cmd);
        const verb = cmd.dryRun ? 'would seal' : 'sealed';
        output(options, result, () =>
          result.manifests.length === 0
            ? `Every manifest of ${serverName} in ${result.repository} is sealed already.`
            : result.manifests.map((m) => (m.outcome === 'sealed' ? `${verb} ${m.id} (${m.status}, ${m.files} entries)` : `refused ${m.id}: ${m.reason}`)).join('\n'),
        );
        const refused = result.manifests.filter((m) => m.outcome === 'refused');
        if (refused.length > 0) {
          throw new HarborError(`${refused.length} manifests of ${serverName} in ${result.repository} were not sealed`, {
            hint: `an encrypted repository serves nothing unencrypted: remove those backups' directories (${serverName}/backups/<id>/) from the repository, or restore them with the pgharbor version that wrote them first`,
          });
        }
      });
    });
}
