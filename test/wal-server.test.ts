import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readdir, writeFile, appendFile, mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser, pgOsUser, startS3Server } from '@pgharbor/sandbox';
import { CLI, createWorkspace, foreignSegment, pgharbor, switchAndWaitArchived, waitFor, waitPromoted, type Workspace } from './harness.js';

/** The WAL servers serving `configFile` (any environment), from /proc: pid → bytes they have read so far. */
async function walServers(configFile: string): Promise<Map<number, number>> {
  const found = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (argv.at(-2) !== 'wal-server' || !argv.includes(configFile)) continue;
      const io = await readFile(`/proc/${entry}/io`, 'utf8');
      found.set(Number(entry), Number(/^rchar: (\d+)$/m.exec(io)![1]));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The WAL servers' logs (all configs), in the PostgreSQL OS user's private directory. */
async function serverLogs(): Promise<string> {
  const dir = path.join(os.tmpdir(), `pgharbor-${pgOsUser().uid}`);
  const logs = (await readdir(dir)).filter((f) => f.startsWith('wal-server-') && f.endsWith('.log'));
  return (await Promise.all(logs.map((f) => readFile(path.join(dir, f), 'utf8')))).join('');
}

/** Wait until every server in `pids` has read `configFile` and listens (a process seen in /proc may still be starting). */
const serving = (configFile: string, pids: Iterable<number>) =>
  waitFor('the WAL servers to listen', async () => {
    const lines = (await serverLogs()).split('\n').filter((line) => line.includes(`serving ${configFile} on `));
    return [...pids].every((pid) => lines.some((line) => line.endsWith(`(pid ${pid})`))) ? true : undefined;
  });

const bytesRead = (servers: Map<number, number>) => [...servers.values()].reduce((a, b) => a + b, 0);
const ids = async (cluster: { query: Workspace['cluster']['query'] }) => (await cluster.query<{ id: number }>('SELECT id FROM t1 ORDER BY id')).map((r) => r.id);

/**
 * archive_command and restore_command calls served by the resident WAL
 * server (packages/cli/src/wal-server.ts): same results as a call working
 * alone, and nothing lost when the server is gone, stale or killed.
 */
describe('the WAL server', () => {
  let ws: Workspace;

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true, archive: true });
    await ws.cluster.query('CREATE TABLE t1 (id int PRIMARY KEY)');
    await ws.cluster.query('INSERT INTO t1 SELECT generate_series(1, 100)');
    const backup = await ws.run(['backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    await switchAndWaitArchived(ws.cluster);
  });
  afterAll(async () => ws?.cleanup());

  it("serves archive_command after the first call: the segments are read by the server, and a PITR through them restores the data", async () => {
    // One: two calls close together can start two, and the one that loses the socket exits within 2 s.
    const servers = await waitFor('a single WAL server for the cluster', async () => ((await walServers(ws.configFile)).size === 1 ? walServers(ws.configFile) : undefined));
    await serving(ws.configFile, servers.keys());
    const before = bytesRead(servers);
    await ws.cluster.query('INSERT INTO t1 SELECT generate_series(101, 200)');
    await switchAndWaitArchived(ws.cluster);
    const [{ now: target }] = await ws.cluster.query<{ now: string }>('SELECT now()::text AS now');
    await new Promise((r) => setTimeout(r, 50));
    await ws.cluster.query('DELETE FROM t1 WHERE id > 150');
    await switchAndWaitArchived(ws.cluster);
    // Two 16 MiB segments went through the server, not through calls working alone.
    expect(bytesRead(await walServers(ws.configFile)) - before).toBeGreaterThanOrEqual(2 * 16 * 1024 * 1024);

    const target1 = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', 'latest', target1, '--target-time', target, '--target-action', 'promote']);
    expect(restore.stderr).not.toMatch(/ERROR/);
    const restored = await ws.startRestored(target1);
    await waitPromoted(restored);
    expect(await ids(restored)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('relays errors and the caller\'s working directory: a foreign segment is refused with its hint, archive-get writes where the caller is', async () => {
    const foreign = await foreignSegment(ws);
    const servedBefore = await walServers(ws.configFile);
    // The first call of this environment works alone and starts a server; the second is served by it.
    const alone = await ws.run(['archive-push', 'pg', foreign]);
    const mine = await waitFor('a WAL server for this environment', async () => {
      const now = await walServers(ws.configFile);
      const added = [...now.keys()].filter((pid) => !servedBefore.has(pid));
      return added.length === 1 ? added[0] : undefined;
    });
    const readBefore = (await walServers(ws.configFile)).get(mine)!;
    const served = await ws.run(['archive-push', 'pg', foreign]);
    expect((await walServers(ws.configFile)).get(mine)! - readBefore).toBeGreaterThanOrEqual(8192); // it read the page header
    for (const result of [alone, served]) {
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/belongs to the cluster with system identifier \d+, but .* holds server pg with \d+/);
      expect(result.stderr).toMatch(/HINT: /);
    }
    expect(served.stderr).toBe(alone.stderr);

    // archive-get with a relative %p lands in the caller's directory, not the server's.
    const [{ last }] = await ws.cluster.query<{ last: string }>('SELECT last_archived_wal AS last FROM pg_stat_archiver');
    const here = path.join(ws.dir, 'fetch-here');
    await mkdir(here);
    await chownToPgUser(here);
    const readBeforeGet = (await walServers(ws.configFile)).get(mine)!;
    const get = await pgharbor(['--config', ws.configFile, 'archive-get', 'pg', last, 'RECOVERYXLOG'], { cwd: here, asPgUser: true });
    expect(get.exitCode).toBe(0);
    expect((await readFile(path.join(here, 'RECOVERYXLOG'))).length).toBe(16 * 1024 * 1024);
    expect((await walServers(ws.configFile)).get(mine)! - readBeforeGet).toBeGreaterThan(0);
    const missing = await pgharbor(['--config', ws.configFile, 'archive-get', 'pg', '00000009.history', 'RECOVERYHISTORY'], { cwd: here, asPgUser: true });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe('');
  });

  it('keeps no descriptor its first caller passed down (a pipe someone reads to its end)', async () => {
    const [{ last }] = await ws.cluster.query<{ last: string }>('SELECT last_archived_wal AS last FROM pg_stat_archiver');
    const before = await walServers(ws.configFile);
    // A new environment, so that this call finds no server and starts one. fd 20 is a pipe: Node marks
    // fds 0-15 close-on-exec when it starts (uv_disable_stdio_inheritance), not the ones after a gap.
    const user = pgOsUser();
    const child = spawn(process.execPath, [CLI, '--config', ws.configFile, 'archive-get', 'pg', last, path.join(ws.dir, 'fd-test')], {
      stdio: [...Array<'ignore'>(20).fill('ignore'), 'pipe'],
      env: { ...process.env, HOME: os.tmpdir(), PGHARBOR_TEST_ENVIRONMENT: 'fd' },
      uid: user.uid,
      gid: user.gid,
    });
    const extra = child.stdio[20] as Readable;
    const ended = new Promise<void>((resolve) => extra.on('end', resolve).on('close', resolve).resume());
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    const started = await waitFor('the server that call started', async () => {
      const added = [...(await walServers(ws.configFile)).keys()].filter((pid) => !before.has(pid));
      return added.length === 1 ? added[0] : undefined;
    });
    await serving(ws.configFile, [started]);
    // Every writer of the pipe is gone although the server lives on.
    await Promise.race([ended, new Promise((_, reject) => setTimeout(() => reject(new Error('the pipe stayed open: the WAL server holds it')), 5000))]);
    expect((await walServers(ws.configFile)).has(started)).toBe(true);
  });

  it('a killed server loses nothing: the next call works alone and starts another', async () => {
    const before = await walServers(ws.configFile);
    for (const pid of before.keys()) process.kill(pid, 'SIGKILL');
    await waitFor('the servers to die', async () => ((await walServers(ws.configFile)).size === 0 ? true : undefined));
    await ws.cluster.query('INSERT INTO t1 VALUES (1000)');
    await switchAndWaitArchived(ws.cluster); // through the dead server's socket: refused, so alone
    const after = await waitFor('a new WAL server', async () => ((await walServers(ws.configFile)).size > 0 ? walServers(ws.configFile) : undefined));
    expect([...after.keys()].some((pid) => before.has(pid))).toBe(false);
    await serving(ws.configFile, after.keys());
    const [{ failed }] = await ws.cluster.query<{ failed: number }>('SELECT failed_count::int AS failed FROM pg_stat_archiver');
    expect(failed).toBe(0);
  });

  it('a changed config retires its servers at once; the next call works alone with the new config', async () => {
    const before = await walServers(ws.configFile);
    expect(before.size).toBeGreaterThan(0);
    await serving(ws.configFile, before.keys()); // one still starting would read the edited config, and rightly stay
    await appendFile(ws.configFile, '# edited\n');
    await waitFor('the servers to exit', async () => ((await walServers(ws.configFile)).size === 0 ? true : undefined), 10_000);
    expect(await serverLogs()).toContain(`exiting: ${ws.configFile} changed or disappeared`);
    await ws.cluster.query('INSERT INTO t1 VALUES (1001)');
    await switchAndWaitArchived(ws.cluster);
    await waitFor('a new WAL server', async () => ((await walServers(ws.configFile)).size > 0 ? true : undefined));
  });

  it('serves S3 repositories too (the full path, loaded once in the server): a served push fetches back intact', async () => {
    const s3 = await startS3Server({ buckets: ['walserver'], conditionalWrites: true });
    try {
      const config = path.join(ws.dir, 's3.yaml');
      await writeFile(
        config,
        ['servers:', '  pg:', `    conninfo: "${ws.cluster.conninfo}"`, '    repositories:',
          `      - { type: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: walserver, access_key_id: { from_env: PGH_WS_KEY }, secret_access_key: { from_env: PGH_WS_SECRET }, compression: lz4 }`, ''].join('\n'),
      );
      await chownToPgUser(config);
      const env = { PGH_WS_KEY: s3.accessKeyId, PGH_WS_SECRET: s3.secretAccessKey };
      // Two archived segments, fetched from the posix repository.
      const walDir = path.join(ws.repoDir, 'pg', 'wal');
      const names = (await Promise.all((await readdir(walDir)).map((d) => readdir(path.join(walDir, d))))).flat().filter((f) => /^[0-9A-F]{24}-/.test(f)).map((f) => f.slice(0, 24)).sort().slice(0, 2);
      expect(names).toHaveLength(2);
      const source = path.join(ws.dir, 's3-source');
      await mkdir(source);
      await chownToPgUser(source);
      for (const name of names) expect((await ws.run(['archive-get', 'pg', name, path.join(source, name)])).exitCode).toBe(0);

      const alone = await pgharbor(['--config', config, 'archive-push', 'pg', path.join(source, names[0])], { asPgUser: true, env });
      expect(alone.stderr).toBe('');
      expect(alone.exitCode).toBe(0);
      const servers = await waitFor('a single WAL server for the S3 config', async () => ((await walServers(config)).size === 1 ? walServers(config) : undefined));
      await serving(config, servers.keys());
      const [pid] = servers.keys();
      const served = await pgharbor(['--config', config, 'archive-push', 'pg', path.join(source, names[1])], { asPgUser: true, env });
      expect(served.stderr).toBe('');
      expect(served.exitCode).toBe(0);
      expect((await walServers(config)).get(pid)! - servers.get(pid)!).toBeGreaterThanOrEqual(16 * 1024 * 1024); // the server read the segment
      const back = path.join(ws.dir, 's3-back');
      const get = await pgharbor(['--config', config, 'archive-get', 'pg', names[1], back], { asPgUser: true, env });
      expect(get.exitCode).toBe(0);
      expect((await readFile(back)).equals(await readFile(path.join(source, names[1])))).toBe(true);
      // What the server logs never holds a secret.
      expect(await serverLogs()).not.toContain(s3.secretAccessKey);
    } finally {
      await s3.destroy();
    }
  });

  it('archive_server: false starts none', async () => {
    const config = path.join(ws.dir, 'alone.yaml');
    await writeFile(config, (await readFile(ws.configFile, 'utf8')).replace('  pg:\n', '  pg:\n    archive_server: false\n'));
    await chownToPgUser(config);
    const [{ last }] = await ws.cluster.query<{ last: string }>('SELECT last_archived_wal AS last FROM pg_stat_archiver');
    await mkdir(path.join(ws.dir, 'alone'));
    await chownToPgUser(path.join(ws.dir, 'alone'));
    const copy = path.join(ws.dir, 'alone', last);
    expect((await pgharbor(['--config', config, 'archive-get', 'pg', last, copy], { asPgUser: true })).exitCode).toBe(0);
    for (let i = 0; i < 2; i++) expect((await pgharbor(['--config', config, 'archive-push', 'pg', copy], { asPgUser: true })).exitCode).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await walServers(config)).size).toBe(0);
  });
});
