import { describe, expect, it } from 'vitest';
import { parseSshCommand, rsyncRemotePath, rsyncShellOption, shellQuote, splitCommandLine } from './ssh-command.js';

describe('--remote-ssh-command parsing', () => {
  it.each<[string, string[]]>([
    ['ssh postgres@pgb', ['ssh', 'postgres@pgb']],
    ['  ssh   -p 2222  postgres@pgb ', ['ssh', '-p', '2222', 'postgres@pgb']],
    [`ssh -i '/keys/my key' postgres@pgb`, ['ssh', '-i', '/keys/my key', 'postgres@pgb']],
    [`ssh -o "ProxyCommand=ssh -W %h:%p jump" pgb`, ['ssh', '-o', 'ProxyCommand=ssh -W %h:%p jump', 'pgb']],
    [`ssh -i /keys/my\\ key pgb`, ['ssh', '-i', '/keys/my key', 'pgb']],
    [`ssh -o 'A=it'"'"'s' pgb`, ['ssh', '-o', "A=it's", 'pgb']],
    [`ssh -o "x=\\"q\\"" ''`, ['ssh', '-o', 'x="q"', '']],
    ['ssh $HOME;rm pgb', ['ssh', '$HOME;rm', 'pgb']], // no shell: no expansion, no command separator
  ])('splits %s', (text, argv) => {
    expect(splitCommandLine(text)).toEqual(argv);
  });

  it('takes the last word as the destination and the host from it', () => {
    expect(parseSshCommand('ssh -p 2222 -i key -o UserKnownHostsFile=f postgres@127.0.0.1')).toEqual({
      text: 'ssh -p 2222 -i key -o UserKnownHostsFile=f postgres@127.0.0.1',
      shell: ['ssh', '-p', '2222', '-i', 'key', '-o', 'UserKnownHostsFile=f'],
      destination: 'postgres@127.0.0.1',
      host: '127.0.0.1',
    });
    expect(parseSshCommand('ssh pgb').host).toBe('pgb');
    expect(parseSshCommand('ssh postgres@::1').host).toBe('::1');
  });

  it.each<[string, RegExp]>([
    ['ssh', /names no destination/],
    [`ssh -p 22 ''`, /empty destination/],
    ['', /names no destination/],
    ['ssh -p 22 -v', /ends with an option/],
    ['ssh ssh://postgres@pgb:22', /ssh:\/\/ destination/],
    ['ssh postgres@pgb:/data', /not a \[user@\]host destination/],
    [`ssh 'postgres@pgb`, /unbalanced '/],
    ['ssh "postgres@pgb', /unbalanced "/],
  ])('refuses %j', (text, message) => {
    expect(() => parseSshCommand(text)).toThrow(message);
  });

  it('quotes for rsync -e, which splits on blanks and doubles quotes inside quotes', () => {
    expect(rsyncShellOption(['ssh', '-p', '2222', '-i', '/keys/my key', '-o', "A=it's"])).toBe(`ssh -p 2222 -i '/keys/my key' -o 'A=it''s'`);
    expect(rsyncShellOption(['ssh', '-o', 'UserKnownHostsFile=/tmp/a/known_hosts'])).toBe('ssh -o UserKnownHostsFile=/tmp/a/known_hosts');
  });

  it('builds rsync remote paths, bracketing IPv6 literals', () => {
    expect(rsyncRemotePath('postgres@pgb', '/data/')).toBe('postgres@pgb:/data/');
    expect(rsyncRemotePath('pgb', '/data')).toBe('pgb:/data');
    expect(rsyncRemotePath('postgres@::1', '/data')).toBe('postgres@[::1]:/data');
  });

  it('quotes words for the remote shell', () => {
    expect(shellQuote('/var/lib/pg/15/main')).toBe('/var/lib/pg/15/main');
    expect(shellQuote('/data/my dir')).toBe(`'/data/my dir'`);
    expect(shellQuote(`/data/it's;$(rm -rf /)`)).toBe(`'/data/it'\\''s;$(rm -rf /)'`);
  });
});
