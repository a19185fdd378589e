import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The pgharbor binary as this process was started: the same one must serve restore_command. */
export function selfCommand(): string[] {
  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'bin.cjs');
  return [process.execPath, bin];
}

/** restore_command that fetches WAL through this pgharbor with this config. */
export function archiveGetCommand(configFile: string, server: string): string {
  const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, '\\$1')}"`);
  return [...selfCommand(), '--config', configFile, 'archive-get', server, '%f', '%p'].map((a) => (a === '%f' || a === '%p' ? a : quote(a))).join(' ');
}
