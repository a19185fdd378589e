import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type SandboxSshd } from '@pgharbor/sandbox';
import { createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

/**
 * A repository on a "remote" host over SFTP: a private OpenSSH server on
 * loopback with its own host key, verified against known_hosts; the
 * repository directory happens to be on this machine, which lets the test
 * look at what landed there.
 */
describe('backup and restore with an SFTP repository (private sshd)', () => {
  let sshd: SandboxSshd;
  let ws: Workspace;
  let remote: string;

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await createWorkspace();
    remote = path.join(ws.dir, 'remote-repo');
    await useRepositories(ws, [
      '- { type: posix, path: ./repo }',
      `- { type: sftp, name: offsite, host: ${sshd.host}, port: ${sshd.port}, user: ${sshd.user}, path: "${remote}",` +
        ` private_key_file: "${sshd.clientKeyFile}", known_hosts_file: "${sshd.knownHostsFile}" }`,
    ]);
    await ws.cluster.pgbench(['-i', '-s', '3', '-q', 'postgres']);
    await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
  });
  afterAll(async () => {
    await ws?.cleanup();
    await sshd?.destroy();
  });

  it('backs up over SFTP, restores from it, and the restored cluster has the same data', async () => {
    const backup = await ws.run(['--json', 'backup', 'pg', '--repo', '2']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    const manifest = JSON.parse(backup.stdout);
    expect(manifest.status).toBe('DONE');
    expect(await readdir(path.join(remote, 'pg', 'backups', manifest.id))).toEqual(expect.arrayContaining(['manifest.json', 'bundle-000001.dat']));

    const list = await ws.run(['list-backups', 'pg']);
    expect(list.stdout).toContain(`pg ${manifest.id} [offsite]`);

    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target, '--repo', '2']);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const source = await pgbenchChecksums(ws.cluster);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();
  });

  it('stores private files: 0600 files in 0700 directories, no temp files left', async () => {
    const walk = async (dir: string): Promise<void> => {
      expect((await stat(dir)).mode & 0o777, dir).toBe(0o700);
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        expect(entry.name, p).not.toMatch(/\.tmp-/);
        if (entry.isDirectory()) await walk(p);
        else expect((await stat(p)).mode & 0o777, p).toBe(0o600);
      }
    };
    await walk(path.join(remote, 'pg'));
  });

  it('refuses a server whose host key does not match known_hosts', async () => {
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, config.replace(sshd.knownHostsFile, sshd.wrongKnownHostsFile));
    try {
      const result = await ws.run(['backup', 'pg', '--repo', '2']);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/ERROR: .*sftp repository sftp:\/\/.*: the host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:\S+\) does not match/);
      expect(result.stderr).toMatch(/HINT: .*intercepting/);
    } finally {
      await writeFile(ws.configFile, config);
    }
  });

  it('deletes a backup over SFTP, leaving no file of it', async () => {
    const [backup] = JSON.parse((await ws.run(['--json', 'list-backups', 'pg', '--repo', '2'])).stdout) as { id: string }[];
    expect((await ws.run(['delete', 'pg', backup.id, '--repo', '2'])).exitCode).toBe(0);
    expect(await readdir(path.join(remote, 'pg', 'backups')).catch(() => [])).not.toContain(backup.id);
  });
});

/** Replace the workspace's repository list (YAML flow mappings, one per line). */
async function useRepositories(ws: Workspace, lines: string[]): Promise<void> {
  const config = await readFile(ws.configFile, 'utf8');
  const replaced = config.replace('      - { type: posix, path: ./repo }\n', lines.map((line) => `      ${line}\n`).join(''));
  if (replaced === config) throw new Error(`unexpected workspace config:\n${config}`);
  await writeFile(ws.configFile, replaced);
}
