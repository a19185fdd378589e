import { ConfigError } from '../errors.js';

/**
 * A `--remote-ssh-command` such as `ssh -p 2222 -i key postgres@pgb`, split
 * into argv without a shell: the destination comes last, any ssh options
 * before it (as Barman's --remote-ssh-command and rsync's -e expect).
 */
export interface SshCommand {
  /** The command as given, for messages. */
  text: string;
  /** Program and options, without the destination (what rsync's -e runs). */
  shell: string[];
  /** `[user@]host` as ssh takes it. */
  destination: string;
  /** The host alone, for messages ("start PostgreSQL on HOST"). */
  host: string;
}

/**
 * Split like a POSIX shell would for the common cases: words separated by
 * blanks, '…' literal, "…" with \" \\ \$ \` escapes, \x outside quotes.
 * Expansions ($VAR, ~, globs) are not performed: nothing runs through a shell.
 */
export function splitCommandLine(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ConfigError(`unbalanced ' in "${text}"`, 'close the quote');
      word += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && j + 1 < text.length && '"\\$`'.includes(text[j + 1])) j++;
        word += text[j];
      }
      if (j >= text.length) throw new ConfigError(`unbalanced " in "${text}"`, 'close the quote');
      i = j;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** `source` names where the command came from, for messages (the CLI option, or a config key such as servers.pga.ssh_command). */
export function parseSshCommand(text: string, source = '--remote-ssh-command'): SshCommand {
  const argv = splitCommandLine(text);
  const usage = `give the ssh command line with the destination last, e.g. ${source} "ssh -p 2222 postgres@pgb"`;
  if (argv.length < 2) throw new ConfigError(`${source} "${text}" names no destination`, usage);
  const destination = argv.at(-1)!;
  if (destination === '') throw new ConfigError(`${source} "${text}" names an empty destination`, usage);
  if (destination.startsWith('-')) throw new ConfigError(`${source} "${text}" ends with an option, not a destination`, usage);
  if (/^ssh:\/\//i.test(destination)) {
    throw new ConfigError(`${source} "${text}": rsync cannot use an ssh:// destination`, 'write it as ssh -p PORT user@host');
  }
  if (/\s/.test(destination) || (destination.includes(':') && !/^([^@]+@)?(\[[^\]]+\]|[0-9a-fA-F:.]+)$/.test(destination))) {
    throw new ConfigError(`${source} "${text}": "${destination}" is not a [user@]host destination`, usage);
  }
  const host = destination.slice(destination.lastIndexOf('@') + 1);
  return { text, shell: argv.slice(0, -1), destination, host };
}

/**
 * rsync's -e takes one string it splits itself: blanks separate words,
 * '…' and "…" group them, a doubled quote inside stands for one, and
 * backslashes are not special.
 */
export function rsyncShellOption(shell: string[]): string {
  return shell.map((arg) => (arg !== '' && /^[\w@%+=:,./~-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "''")}'`)).join(' ');
}

/** `[user@]host:path` for rsync; IPv6 literals go in brackets. */
export function rsyncRemotePath(destination: string, remotePath: string): string {
  const at = destination.lastIndexOf('@');
  const user = destination.slice(0, at + 1);
  const host = destination.slice(at + 1);
  return `${user}${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${remotePath}`;
}

/** Quote a word for the POSIX shell that sshd runs the remote command in. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
