import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, type SandboxS3Server } from '@pgharbor/sandbox';
import { CLI, addS3Repository, createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

/**
 * Issue 16, item 6: a delete or expire killed (SIGKILL) at any step leaves
 * a backup that list-backups shows DELETING, that restore refuses, and that
 * the next delete, expire or cron removes completely; the other backups
 * still restore. The kill is deterministic: PGHARBOR_TEST_PAUSE_AT makes the
 * command stop at a named step and say so, and the test kills it there.
 */
const BUCKET = 'deletes';
type Step = 'delete:marked' | 'delete:some-data' | 'delete:manifest-removed';

describe('interrupted deletes finish', () => {
  let ws: Workspace;
  let s3: SandboxS3Server;
  let source: Record<string, string>;
  const backups: Record<1 | 2, string[]> = { 1: [], 2: [] };

  const run = (args: string[], config = ws.configFile) =>
    execa(process.execPath, [CLI, '--config', config, ...args], { reject: false, stdin: 'ignore' }).then((r) => ({ exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) }));

  /** Start `pgharbor ARGS`, wait until it pauses at `step`, SIGKILL it there. */
  async function killAt(step: Step, args: string[], config = ws.configFile): Promise<void> {
    const child = execa(process.execPath, [CLI, '--config', config, ...args], { reject: false, stdin: 'ignore', env: { PGHARBOR_TEST_PAUSE_AT: step } });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes(`paused at ${step}`)) resolve();
      });
      void child.then((r) => reject(new Error(`${args.join(' ')} ended (exit ${r.exitCode}) before ${step}: ${stderr}`)));
    });
    child.kill('SIGKILL');
    const result = await child;
    expect(result.signal).toBe('SIGKILL');
  }

  async function listed(repo: 1 | 2): Promise<{ id: string; status: string }[]> {
    const result = await run(['--json', 'list-backups', 'pg', '--repo', String(repo)]);
    expect(result.exitCode, result.stderr).toBe(0);
    return JSON.parse(result.stdout);
  }

  /**
   * Every stored path naming the backup. posix: anything in the repository directory. S3: every file in
   * s3rver's directory, which holds the objects and the parts of unfinished multipart uploads (it keeps
   * empty directories of deleted objects on purpose, see the sandbox: those are no objects).
   */
  async function remnants(repo: 1 | 2, id: string): Promise<string[]> {
    const root = repo === 1 ? ws.repoDir : path.join(s3.directory, BUCKET);
    const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => repo === 1 || e.isFile())
      .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
      .filter((p) => p.includes(id));
  }

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    ws = await createWorkspace({ serverExtra: ['minimum_redundancy: 1', 'retention_policy_mode: manual'] });
    await addS3Repository(ws, s3, { bucket: BUCKET, prefix: 'r', env: 'PGH_DEL_S3' });
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    source = await pgbenchChecksums(ws.cluster);
    for (let i = 0; i < 5; i++) {
      for (const repo of [1, 2] as const) {
        const backup = await run(['--json', 'backup', 'pg', '--repo', String(repo)]);
        expect(backup.exitCode, backup.stderr).toBe(0);
        backups[repo].push(JSON.parse(backup.stdout).id);
      }
      await new Promise((r) => setTimeout(r, 1100)); // backup ids have one-second resolution
    }
  });
  afterAll(async () => {
    await ws?.cleanup();
    await s3?.destroy();
  });

  for (const repo of [1, 2] as const) {
    const name = repo === 1 ? 'posix' : 's3';
    // Every step is finished by each of the three commands on one store or the other.
    const cases: { step: Step; finisher: 'delete' | 'expire' | 'cron' }[] =
      repo === 1
        ? [
            { step: 'delete:marked', finisher: 'delete' },
            { step: 'delete:some-data', finisher: 'expire' },
            { step: 'delete:manifest-removed', finisher: 'cron' },
          ]
        : [
            { step: 'delete:marked', finisher: 'cron' },
            { step: 'delete:some-data', finisher: 'delete' },
            { step: 'delete:manifest-removed', finisher: 'delete' },
          ];
    cases.forEach(({ step, finisher }, index) => {
      it(`${name}: delete killed at ${step} is DELETING, not restorable, and \`${finisher}\` finishes it`, async () => {
        const id = backups[repo][index];
        await killAt(step, ['delete', 'pg', id, '--repo', String(repo)]);
        const after = await listed(repo);
        if (step === 'delete:manifest-removed') {
          // Only the marker is left: nothing to list, nothing restorable, but not finished either.
          expect(after.map((b) => b.id)).not.toContain(id);
          expect(await remnants(repo, id)).not.toEqual([]);
        } else {
          expect(after.find((b) => b.id === id)?.status).toBe('DELETING');
          const text = await run(['list-backups', 'pg', '--repo', String(repo)]);
          expect(text.stdout).toMatch(new RegExp(`${id}.* - DELETING \\(deletion begun .* by delete was interrupted; the next delete, expire or cron finishes it\\)`));
          const target = await ws.restoreTarget();
          const restore = await run(['restore', 'pg', id, target, '--repo', String(repo)]);
          expect(restore.exitCode).toBe(1);
          expect(restore.stderr).toMatch(new RegExp(`backup ${id} of server pg is DELETING, not restorable`));
          expect(await readdir(target)).toEqual([]);
        }
        // The killed command left its lock behind: the next one takes it over (its holder is dead).
        const next = finisher === 'delete' ? await run(['delete', 'pg', id, '--repo', String(repo)]) : await run([finisher, ...(finisher === 'cron' ? [] : ['pg'])]);
        expect(next.exitCode, next.stderr).toBe(0);
        expect(await remnants(repo, id)).toEqual([]);
        expect((await listed(repo)).map((b) => b.id)).not.toContain(id);
      });
    });

    it(`${name}: expire killed half-way is DELETING, not counted by retention, and the next expire finishes it; the rest still restores`, async () => {
      const redundancy = path.join(ws.dir, 'redundancy.yaml');
      // A policy for this repository only: expire leaves the other one alone.
      const config = await readFile(ws.configFile, 'utf8');
      await writeFile(redundancy, repo === 1 ? config.replace('path: ./repo }', 'path: ./repo, retention: REDUNDANCY 1 }') : config.replace('prefix: r,', 'prefix: r, retention: REDUNDANCY 1,'));
      const [obsolete, kept] = backups[repo].slice(3);
      await killAt('delete:some-data', ['expire', 'pg'], redundancy);
      const after = await listed(repo);
      expect(after.find((b) => b.id === obsolete)?.status).toBe('DELETING');
      expect(after.find((b) => b.id === kept)?.status).toBe('DONE');
      const status = await run(['status', 'pg'], redundancy);
      expect(status.stdout).toMatch(/No\. of available backups: 1 \(and 1 DELETING/);
      const next = await run(['expire', 'pg'], redundancy);
      expect(next.exitCode, next.stderr).toBe(0);
      expect(next.stdout).toContain(`backup ${obsolete}: its interrupted deletion was finished`);
      expect(await remnants(repo, obsolete)).toEqual([]);
      expect((await listed(repo)).map((b) => `${b.id} ${b.status}`)).toEqual([`${kept} DONE`]);

      const target = await ws.restoreTarget();
      const restore = await run(['restore', 'pg', kept, target, '--repo', String(repo)]);
      expect(restore.exitCode, restore.stderr).toBe(0);
      const restored = await ws.startRestored(target);
      expect(await pgbenchChecksums(restored)).toEqual(source);
      await restored.stop();
    });
  }
});
