import { describe, expect, it } from 'vitest';
import { parseSshCommand, rsyncShell, sshArgv } from './ssh-command.js';
import { parseListLine } from './rsync-runner.js';
import { planCopy } from './copy-plan.js';

describe('ssh_command', () => {
  it('splits like a shell, destination last, without running one; BatchMode added for ssh and rsync -e', () => {
    const ssh = parseSshCommand(`ssh -p 2222 -i "/keys/my key" -o 'UserKnownHostsFile=/k h' postgres@db1`, 'x');
    expect(ssh).toMatchObject({ shell: ['ssh', '-p', '2222', '-i', '/keys/my key', '-o', 'UserKnownHostsFile=/k h'], destination: 'postgres@db1', host: 'db1' });
    expect(rsyncShell(ssh)).toBe(`ssh -o BatchMode=yes -p 2222 -i '/keys/my key' -o 'UserKnownHostsFile=/k h'`);
    expect(sshArgv(ssh, ['test', '-r', "/data/it's"])[1].at(-1)).toBe(`test -r '/data/it'\\''s'`);
  });

  it('refuses a command without a destination, naming the config key', () => {
    expect(() => parseSshCommand('ssh', 'servers.pg.ssh_command')).toThrow(/servers\.pg\.ssh_command "ssh" names no destination/);
    expect(() => parseSshCommand('ssh postgres@db1 -v', 'servers.pg.ssh_command')).toThrow(/ends with an option/);
    expect(() => parseSshCommand('ssh "postgres@db1', 'servers.pg.ssh_command')).toThrow(/unbalanced/);
  });
});

describe('rsync --list-only lines', () => {
  it('reads type, mode, size with separators, UTC time and names with spaces and links', () => {
    expect(parseListLine('-rw-------          8,192 2026/11/25 17:00:01 base/1/12 34')).toEqual({ path: 'base/1/12 34', type: 'file', size: 8192, mtime: Date.UTC(2026, 10, 25, 17, 0, 1) / 1000, mode: 0o600 });
    expect(parseListLine('drwx------          4,096 2026/11/25 17:00:01 pg_wal')?.mode).toBe(0o700);
    expect(parseListLine('lrwxrwxrwx             12 2026/11/25 17:00:01 pg_wal -> /wal/disk')).toMatchObject({ type: 'symlink', path: 'pg_wal', linkTarget: '/wal/disk' });
    expect(parseListLine('receiving incremental file list')).toBeUndefined();
  });
});

describe('copy plan', () => {
  const entry = (path: string, size: number, mtime = 100) => ({ path, type: 'file' as const, size, mtime, mode: 0o600 });

  it('spreads files over the jobs, largest first, directories with the first', async () => {
    const plan = await planCopy([{ path: 'base', type: 'directory', size: 0, mtime: 0, mode: 0o700 }, entry('a', 10), entry('b', 9), entry('c', 2), entry('d', 1)], 2);
    expect(plan.groups).toEqual([['base', 'a', 'd'], ['b', 'c']]);
    expect(plan.recheck).toEqual([]);
    expect(plan.bytes).toBe(22);
  });

  it('rechecks by checksum the files the quick check would skip although they changed after the earlier copy', async () => {
    const earlier: Record<string, { size: number; mtime: number }> = { old: { size: 5, mtime: 50 }, same: { size: 5, mtime: 200 }, grown: { size: 4, mtime: 200 } };
    const plan = await planCopy([entry('old', 5, 50), entry('same', 5, 200), entry('grown', 5, 200), entry('new', 5, 200)], 1, { stat: async (p) => earlier[p], horizon: 150 });
    // "same": same size and second as the earlier copy, but written after it began: only a checksum tells.
    expect(plan.recheck).toEqual(['same']);
    expect(plan.groups).toEqual([['old', 'grown', 'new']]);
  });
});
