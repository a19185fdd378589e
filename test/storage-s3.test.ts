import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, type SandboxS3Server } from '@pgharbor/sandbox';
import { createWorkspace, pgbenchChecksums, pgharborProcess, type CliResult, type Workspace } from './harness.js';

/**
 * The seed's two-repository setup: repo1 on local disk (posix), repo2 in an
 * S3 bucket (s3rver, path-style URLs, keys from the environment). Backups go
 * to either with --repo, list-backups shows which repository holds which,
 * and a backup restores from S3 into a cluster that starts with the same data.
 */
const BUCKET = 'pgharbor';

describe('backup and restore with an S3 repository (s3rver)', () => {
  let s3: SandboxS3Server;
  let ws: Workspace;
  const outputs: CliResult[] = [];
  const run = async (args: string[]) => {
    const result = await ws.run(args);
    outputs.push(result);
    return result;
  };

  beforeAll(async () => {
    // conditionalWrites: create-only puts (identity file, locks) behave as on AWS, MinIO or Ceph.
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    process.env.PGH_E2E_S3_KEY_ID = s3.accessKeyId;
    process.env.PGH_E2E_S3_SECRET = s3.secretAccessKey;
    ws = await createWorkspace();
    await useRepositories(ws, [
      '- { type: posix, path: ./repo }',
      `- { type: s3, name: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: ${BUCKET}, prefix: e2e/cluster-a,` +
        ' access_key_id: { from_env: PGH_E2E_S3_KEY_ID }, secret_access_key: { from_env: PGH_E2E_S3_SECRET }, part_size: 5MiB,' +
        // Uncompressed: pgbench data shrinks below one 5 MiB part otherwise, and the multipart path must run.
        ' compression: none }',
    ]);
    await ws.cluster.pgbench(['-i', '-s', '3', '-q', 'postgres']);
    await ws.cluster.pgbench(['-t', '100', '-c', '2', 'postgres']);
  });
  afterAll(async () => {
    await ws?.cleanup();
    await s3?.destroy();
  });

  it('checks the S3 repository', async () => {
    const check = await run(['check', 'pg']);
    expect(check.stdout).toMatch(/s3:\/\/pgharbor\/e2e\/cluster-a\//);
    expect(check.stdout).not.toMatch(/FAILED/);
    expect(check.exitCode).toBe(0);
  });

  it('backs up into S3 (--repo 2) with multipart uploads, restores from it, and the restored cluster has the same data', async () => {
    s3.clearRequests();
    const backup = await run(['--json', 'backup', 'pg', '--repo', '2']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    const manifest = JSON.parse(backup.stdout);
    expect(manifest.status).toBe('DONE');
    // The bundle (tens of MiB) went up in 5 MiB parts.
    expect(s3.requests().filter((r) => r.method === 'PUT' && r.url.includes('partNumber=')).length).toBeGreaterThan(2);
    expect(s3.requests().every((r) => r.url.startsWith(`/${BUCKET}/e2e/cluster-a/`) || r.url.startsWith(`/${BUCKET}?`) || r.url.startsWith(`/${BUCKET}/?`))).toBe(true);

    const target = await ws.restoreTarget();
    const restore = await run(['restore', 'pg', 'latest', target, '--repo', '2']);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    expect(restore.stdout).toContain('every checksum verified');
    const source = await pgbenchChecksums(ws.cluster);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    await restored.stop();
  });

  it('keeps backups apart per repository; list-backups shows which repository holds each', async () => {
    const local = await run(['--json', 'backup', 'pg']);
    expect(local.exitCode).toBe(0);
    const localId = JSON.parse(local.stdout).id as string;

    const all = await run(['list-backups', 'pg']);
    expect(all.exitCode).toBe(0);
    expect(all.stdout).toContain(`pg ${localId} [repo1]`);
    expect(all.stdout).toMatch(/pg \d{8}T\d{6} \[s3\]/);
    const json = JSON.parse((await run(['--json', 'list-backups', 'pg'])).stdout) as { id: string; repository: string }[];
    expect(json.map((b) => b.repository).sort()).toEqual(['repo1', 's3']);

    const onlyS3 = JSON.parse((await run(['--json', 'list-backups', 'pg', '--repo', '2'])).stdout) as { id: string }[];
    expect(onlyS3.map((b) => b.id)).not.toContain(localId);
    const show = await run(['show-backup', 'pg', 'latest', '--repo', '2']);
    expect(show.stdout).toMatch(/Status\s+: DONE/);
  });

  it('deletes a backup from S3, leaving no object of it', async () => {
    const [backup] = JSON.parse((await run(['--json', 'list-backups', 'pg', '--repo', '2'])).stdout) as { id: string }[];
    const result = await run(['delete', 'pg', backup.id, '--repo', '2']);
    expect(result.exitCode).toBe(0);
    expect(JSON.parse((await run(['--json', 'list-backups', 'pg', '--repo', '2'])).stdout)).toEqual([]);
    const left = await objectKeys(s3, `e2e/cluster-a/pg/backups/${backup.id}/`);
    expect(left).toEqual([]);
  });

  it('a backup whose S3 store goes away mid-upload ends FAILED, naming the repository', async () => {
    s3.clearRequests();
    const child = pgharborProcess(['--config', ws.configFile, 'backup', 'pg', '--repo', '2']);
    // Wait for the bundle's multipart upload to be under way, then stop the store.
    for (let i = 0; i < 600 && !s3.requests().some((r) => r.url.includes('partNumber=')); i++) await sleep(25);
    await s3.stop();
    const result = await child;
    await s3.start();
    expect(result.exitCode).toBe(1);
    expect(String(result.stderr)).toMatch(/ERROR: .*s3 repository s3:\/\/pgharbor\/e2e\/cluster-a\/ at 127\.0\.0\.1:\d+/);
    // Once the store is back: the backup is not restorable, and the next one works.
    const list = JSON.parse((await run(['--json', 'list-backups', 'pg', '--repo', '2'])).stdout) as { status: string }[];
    expect(list.map((b) => b.status)).not.toContain('DONE');
    const next = await run(['--json', 'backup', 'pg', '--repo', '2']);
    expect(next.stderr).not.toMatch(/ERROR/);
    expect(JSON.parse(next.stdout).status).toBe('DONE');
  });

  it('never prints the S3 credentials', () => {
    for (const { stdout, stderr } of outputs) {
      expect(stdout + stderr).not.toContain(s3.secretAccessKey);
      expect(stdout + stderr).not.toContain(s3.accessKeyId);
    }
  });
});

/** Replace the workspace's repository list (YAML flow mappings, one per line). */
async function useRepositories(ws: Workspace, lines: string[]): Promise<void> {
  const config = await readFile(ws.configFile, 'utf8');
  const replaced = config.replace('      - { type: posix, path: ./repo }\n', lines.map((line) => `      ${line}\n`).join(''));
  if (replaced === config) throw new Error(`unexpected workspace config:\n${config}`);
  await writeFile(ws.configFile, replaced);
}

/** Objects s3rver holds under a key prefix (it keeps each object as "<name>._S3rver_object" in directories). */
async function objectKeys(s3: SandboxS3Server, prefix: string): Promise<string[]> {
  const dir = path.join(s3.directory, BUCKET, ...prefix.split('/').filter(Boolean));
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((name) => name.endsWith('._S3rver_object'));
}
