// A complete pgharbor plugin: it writes one JSON line per finished or failed
// backup to a journal file, and refuses to start a backup while a file named
// by `pauseFile` exists (a maintenance switch a DBA can `touch`).
//
// Load it from pgharbor.config.yaml:
//   plugins:
//     - module: ./examples/plugins/backup-journal.mjs
//       options: { journal: /var/log/pgharbor-journal.jsonl, pauseFile: /etc/pgharbor/pause }
import { appendFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';

export default function backupJournal(options = {}) {
  const journal = options.journal ?? 'pgharbor-journal.jsonl';
  const write = (record) => appendFile(journal, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
  return {
    name: 'backup-journal',
    apply(harbor) {
      harbor.hooks.backup.before.tapPromise('backup-journal', async (event) => {
        if (options.pauseFile && existsSync(options.pauseFile)) return `backups are paused (${options.pauseFile} exists)`;
      });
      harbor.hooks.backup.after.tapPromise('backup-journal', (event, manifest) =>
        write({ event: 'backup.succeeded', server: event.server, backup: event.backupId, bytes: manifest.size }),
      );
      harbor.hooks.backup.failed.tapPromise('backup-journal', (event, error) =>
        write({ event: 'backup.failed', server: event.server, backup: event.backupId, error: error.message }),
      );
      harbor.hooks.check.tapPromise('backup-journal', async (check) => {
        check.report({ name: 'backup journal', ok: true, detail: journal });
      });
    },
  };
}
