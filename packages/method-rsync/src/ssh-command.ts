import { parseSshCommand as parseCommandLine, rsyncShellOption, shellQuote, type SshCommand } from '@pgharbor/core';

export type { SshCommand } from '@pgharbor/core';

/**
 * `ssh_command` from the config, Barman style (`ssh -p 2222 postgres@db1`,
 * destination last), parsed by the same code as restore's
 * --remote-ssh-command: never run through a local shell.
 */
export function parseSshCommand(text: string, where: string): SshCommand {
  return parseCommandLine(text, where);
}

/** BatchMode: from cron, a missing key must fail at once, not wait for a password nobody types. */
function batchShell(ssh: SshCommand): string[] {
  return [ssh.shell[0], '-o', 'BatchMode=yes', ...ssh.shell.slice(1)];
}

/** argv of `ssh … destination -- remote command`, the remote command quoted for the remote shell. */
export function sshArgv(ssh: SshCommand, remote: string[]): [string, string[]] {
  const [program, ...options] = batchShell(ssh);
  return [program, [...options, ssh.destination, '--', remote.map(shellQuote).join(' ')]];
}

/** The value of rsync's `-e`. */
export function rsyncShell(ssh: SshCommand): string {
  return rsyncShellOption(batchShell(ssh));
}
