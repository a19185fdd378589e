import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, type SandboxCluster } from '@pgharbor/sandbox';
import { pgharbor, scratchDir, type CliResult } from './harness.js';
import { startReceiver, type Receiver } from './notify-receiver.js';

/**
 * archive-push runs as PostgreSQL's archive_command, once per WAL segment,
 * and PostgreSQL waits for it. These tests measure what a notification
 * target that does not answer costs it, and check the failure/recovery
 * events: one archive.failed when archiving starts failing (not one per
 * retry), one archive.recovered when it works again.
 */
describe('notifications from archive-push', () => {
  let dir: string;
  let cluster: SandboxCluster;
  let receiver: Receiver;
  let segment: string;
  const push = async (config: string): Promise<CliResult & { seconds: number }> => {
    const started = Date.now();
    const result = await pgharbor(['--config', path.join(dir, config), 'archive-push', 'pg', segment]);
    return { ...result, seconds: (Date.now() - started) / 1000 };
  };
  const identity = () => path.join(dir, 'repo', 'pg', 'identity.json');
  const writeConfig = (name: string, notifications: string) =>
    writeFile(
      path.join(dir, name),
      `state_dir: ./state\nservers:\n  pg:\n    conninfo: "${cluster.conninfo}"\n    repositories:\n      - { type: posix, path: ./repo }\n${notifications}`,
    );

  beforeAll(async () => {
    [cluster, receiver, dir] = await Promise.all([createCluster(), startReceiver(), scratchDir('pgharbor-notify-archive-')]);
    // A real, complete WAL segment of this cluster.
    const [{ name }] = await cluster.query<{ name: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS name');
    await cluster.query('CREATE TABLE t AS SELECT 1 AS x');
    await cluster.query('SELECT pg_switch_wal()');
    await mkdir(path.join(dir, 'wal'));
    segment = path.join(dir, 'wal', name);
    await copyFile(path.join(cluster.dataDir, 'pg_wal', name), segment);
    await writeConfig('quiet.yaml', '');
    // "down" accepts the connection and never answers: the worst kind of dead receiver.
    await writeConfig(
      'notify.yaml',
      `notifications:\n  - { type: webhook, name: pager, url: "${receiver.url}/pager", on: ["archive.*"] }\n  - { type: webhook, name: down, url: "${receiver.url}/down", on: ["archive.*"], timeout: 3, retries: 1 }\n`,
    );
  });
  afterAll(async () => {
    // The flusher outlives archive-push by design; stop the one this test started.
    const pid = Number((JSON.parse(await readFile(path.join(dir, 'state', 'spool', '.flusher.lock'), 'utf8').catch(() => '{}')) as { pid?: number }).pid ?? 0);
    if (pid > 0) process.kill(pid, 'SIGTERM');
    await Promise.all([cluster?.destroy(), receiver?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('a dead receiver costs a failing archive-push at most the 2 s budget; one archive.failed per outage; archive.recovered when it works again', async () => {
    receiver.behave = (p) => (p === '/down' ? { delayMs: Infinity } : {});
    // Archiving fails: the repository belongs to another cluster.
    await mkdir(path.dirname(identity()), { recursive: true });
    await writeFile(identity(), JSON.stringify({ systemIdentifier: '1', pgVersion: 150000, createdAt: new Date().toISOString() }));

    const baseline = await push('quiet.yaml');
    expect(baseline.exitCode).toBe(1);
    const first = await push('notify.yaml');
    expect(first.exitCode).toBe(1); // the push's own result, unchanged
    expect(first.stderr).toMatch(/ERROR: .*system identifier/);
    expect(first.stderr).toMatch(/WARN: notification archive\.failed to down \(webhook\) failed after 1 attempt\(s\): timed out after 2\.0 s/);
    expect(receiver.at('/pager').map((d) => d.json)).toEqual([
      expect.objectContaining({ event: 'archive.failed', server: 'pg', walFile: path.basename(segment), failures: 1, error: expect.objectContaining({ message: expect.stringMatching(/system identifier/) }) }),
    ]);

    // PostgreSQL retries: the outage is already notified, so the retry delivers nothing and pays nothing;
    // the first failure paid the 2 s budget on top of that, no more.
    const again = await push('notify.yaml');
    expect(again.exitCode).toBe(1);
    expect(receiver.at('/pager')).toHaveLength(1);
    // The WARN line above shows the dead target cut at the 2 s budget; wall times are noisy on a shared machine.
    expect(first.seconds).toBeGreaterThan(2);
    expect(first.seconds - again.seconds).toBeLessThan(5);
    // The wrong cluster's segment was not even copied into the repository (no temp file, no directory).
    expect(await readdir(path.dirname(identity()))).toEqual(['identity.json']);

    await rm(identity());
    const recovered = await push('notify.yaml');
    expect(recovered.exitCode, recovered.stderr).toBe(0);
    expect(receiver.at('/pager').map((d) => d.json)).toEqual([
      expect.objectContaining({ event: 'archive.failed' }),
      expect.objectContaining({ event: 'archive.recovered', failures: 2, failingSince: receiver.at('/pager')[0].json.failingSince }),
    ]);
    // Once archiving works, a push costs no delivery at all.
    const steady = await push('notify.yaml');
    expect(steady.exitCode).toBe(0);
    expect(receiver.at('/pager')).toHaveLength(2);
    console.log(
      `archive-push timings: no notifications (lean path) ${baseline.seconds.toFixed(2)} s; first failure with a dead receiver ${first.seconds.toFixed(2)} s; ` +
        `repeated failure ${again.seconds.toFixed(2)} s; recovery ${recovered.seconds.toFixed(2)} s; steady success ${steady.seconds.toFixed(2)} s`,
    );

    // The detached flusher delivers what the dead receiver missed once it answers again.
    receiver.behave = () => ({});
    await receiver.waitFor(() => receiver.at('/down').length === 2, 60_000);
    expect(receiver.at('/down').map((d) => d.json.event).sort()).toEqual(['archive.failed', 'archive.recovered']);
  }, 120_000);
});
