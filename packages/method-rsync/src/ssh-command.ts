import { HarborError } from '@pgharbor/core';

/**
 * An ssh command line as a DBA writes it in the config, Barman style:
 * `ssh -p 2222 -i /etc/pgharbor/key postgres@db1`. The destination comes
 * last; everything before it is the ssh program and its options. It is
 * never run through a shell: we split it into words ourselves.
 */
export interface SshCommand {
  program: string;
  options: string[];
  /** `user@host` or `host`, as written. */
  destination: string;
  /** The host part, for messages. */
  host: string;
}

export function parseSshCommand(text: string, where: string): SshCommand {
  const words = splitWords(text, where);
  if (words.length < 2) {
    throw new HarborError(`${where}: "${text}" names no host`, { hint: 'write the whole ssh command, destination last, e.g. "ssh postgres@db1" or "ssh -p 2222 postgres@db1"', exitCode: 2 });
  }
  const destination = words.at(-1)!;
  if (destination.startsWith('-')) {
    throw new HarborError(`${where}: "${text}" ends with an option, not a destination`, { hint: 'put the destination (user@host) last', exitCode: 2 });
  }
  return { program: words[0], options: words.slice(1, -1), destination, host: destination.slice(destination.lastIndexOf('@') + 1) };
}

/** argv of `ssh … destination -- remote command`, the remote command quoted for the remote shell. */
export function sshArgv(ssh: SshCommand, remote: string[]): [string, string[]] {
  // BatchMode: a missing key fails at once instead of waiting for a password nobody types.
  return [ssh.program, ['-o', 'BatchMode=yes', ...ssh.options, ssh.destination, '--', remote.map(shellQuote).join(' ')]];
}

/** The value of rsync's `-e`: rsync splits it into words itself, honouring quotes. */
export function rsyncShellOption(ssh: SshCommand): string {
  return [ssh.program, '-o', 'BatchMode=yes', ...ssh.options].map(shellQuote).join(' ');
}

/** Quote one word for a POSIX shell (and rsync's -e splitter), leaving plain words alone. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Shell-like word splitting: spaces separate, single and double quotes group, backslash escapes. */
function splitWords(text: string, where: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) current += text[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      current += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote) throw new HarborError(`${where}: unbalanced ${quote} in "${text}"`, { hint: 'close the quote', exitCode: 2 });
  if (inWord) words.push(current);
  return words;
}
