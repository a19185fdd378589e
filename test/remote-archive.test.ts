import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, startSshd, type SandboxS3Server, type SandboxSshd } from '@pgharbor/sandbox';
import { createWorkspace, sshFilesForPgUser, switchAndWaitArchived, waitPromoted, type Workspace } from './harness.js';

const BUCKET = 'pgharbor';

/**
 * WAL archived by PostgreSQL's archive_command straight into S3 and SFTP
 * (no local repository), point-in-time recovery from each, and retention
 * deleting from both: the whole cycle on remote stores.
 */
describe('archive, PITR and expiry with S3 and SFTP repositories', () => {
  let s3: SandboxS3Server;
  let sshd: SandboxSshd;
  let ws: Workspace;
  let noted: string;
  const ids = async (cluster: { query: Workspace['cluster']['query'] }) => (await cluster.query<{ i: number }>('SELECT i FROM t ORDER BY i')).map((r) => r.i);

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    sshd = await startSshd();
    // archive_command runs as the postgres OS user with the server's environment: credentials and keys must reach it.
    process.env.PGH_E2E_S3_KEY_ID = s3.accessKeyId;
    process.env.PGH_E2E_S3_SECRET = s3.secretAccessKey;
    ws = await createWorkspace({ asPgUser: true, archive: true, serverExtra: ['retention: REDUNDANCY 1', 'retention_policy_mode: manual'] });
    const { keyFile, knownHosts } = await sshFilesForPgUser(sshd, ws.dir);
    const remote = path.join(ws.dir, 'sftp-repo');
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(
      ws.configFile,
      config.replace(
        '      - { type: posix, path: ./repo }\n',
        `      - { type: s3, name: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: ${BUCKET}, prefix: pitr,` +
          ' access_key_id: { from_env: PGH_E2E_S3_KEY_ID }, secret_access_key: { from_env: PGH_E2E_S3_SECRET } }\n' +
          `      - { type: sftp, name: sftp, host: ${sshd.host}, port: ${sshd.port}, user: ${sshd.user}, path: "${remote}",` +
          ` private_key_file: "${keyFile}", known_hosts_file: "${knownHosts}" }\n`,
      ),
    );
    await ws.cluster.query('CREATE TABLE t (i int)');
    await ws.cluster.query('INSERT INTO t SELECT generate_series(1, 100)');
  });
  afterAll(async () => {
    await ws?.cleanup();
    await s3?.destroy();
    await sshd?.destroy();
  });

  it('archive_command stores WAL in S3 and over SFTP; both restore to a point in time', async () => {
    for (const repo of ['1', '2']) {
      const backup = await ws.run(['backup', 'pg', '--repo', repo]);
      expect(backup.stderr).not.toMatch(/ERROR/);
      expect(backup.exitCode).toBe(0);
    }
    await switchAndWaitArchived(ws.cluster, 90_000);
    [{ now: noted }] = await ws.cluster.query<{ now: string }>('SELECT now()::text AS now');
    await new Promise((r) => setTimeout(r, 50));
    await ws.cluster.query('DELETE FROM t WHERE i > 90');
    await switchAndWaitArchived(ws.cluster, 90_000);

    for (const repo of ['1', '2']) {
      const target = await ws.restoreTarget();
      const restore = await ws.run(['restore', 'pg', 'latest', target, '--repo', repo, '--target-time', noted, '--target-action', 'promote']);
      expect(restore.stderr).not.toMatch(/ERROR/);
      expect(restore.exitCode).toBe(0);
      const restored = await ws.startRestored(target);
      await waitPromoted(restored);
      expect(await ids(restored)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      await restored.stop();
    }
  });

  it('expire deletes the obsolete backup and its WAL from S3 and from the SFTP store', async () => {
    const before = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string; repository: string }[];
    await new Promise((r) => setTimeout(r, 1100));
    for (const repo of ['1', '2']) expect((await ws.run(['backup', 'pg', '--repo', repo])).exitCode).toBe(0);
    const expired = await ws.run(['expire', 'pg']);
    expect(expired.exitCode).toBe(0);
    for (const old of before) expect(expired.stdout).toContain(`${old.repository}: removed backup ${old.id}`);
    expect(expired.stdout).toMatch(/s3: removed wal/);
    expect(expired.stdout).toMatch(/sftp: removed wal/);
    const after = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as { id: string; repository: string }[];
    expect(after.map((b) => b.repository).sort()).toEqual(['s3', 'sftp']);
    // Nothing of the expired backups is left in either store.
    const s3Keys = await listFiles(s3.directory);
    const sftpFiles = await listFiles(path.join(ws.dir, 'sftp-repo'));
    for (const old of before) {
      expect(s3Keys.filter((k) => k.includes(old.id))).toEqual([]);
      expect(sftpFiles.filter((k) => k.includes(old.id))).toEqual([]);
    }
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out;
}
