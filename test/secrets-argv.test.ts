import { readFileSync, readdirSync } from 'node:fs';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownToPgUser, pgOsUser } from '@pgharbor/sandbox';
import { CLI, createWorkspace, waitFor, type Workspace } from './harness.js';

/**
 * Another local user can read every process's command line (`ps -eo args`,
 * /proc/PID/cmdline). While pgharbor backs up (its own BASE_BACKUP client,
 * no child process) and runs pg_receivewal with a password-protected connection (scram-sha-256 over TCP), the
 * password given inline in conninfo or through `password: { from_file }`
 * must never be on any command line, nor in pgharbor's output.
 */

/** Every command line on the host, read from /proc as `ps` does, plus `ps -eo args` itself now and then. */
class ArgvSampler {
  readonly seen: string[] = [];
  samples = 0;
  private timer?: NodeJS.Timeout;
  private psRuns = 0;

  start(): void {
    const tick = () => {
      this.samples++;
      for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
        try {
          this.seen.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
        } catch {
          // gone meanwhile
        }
      }
      if (this.psRuns++ % 10 === 0) {
        void execa('ps', ['-eo', 'args', '--no-headers'], { reject: false }).then((r) => this.seen.push(...String(r.stdout).split('\n')));
      }
      this.timer = setTimeout(tick, 5);
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Command lines of `program` that were seen (proves the sampler caught it running). */
  of(program: string): string[] {
    return [...new Set(this.seen.filter((line) => line.includes(`/${program} `) || line.startsWith(`${program} `)))];
  }

  containing(secret: string): string[] {
    return [...new Set(this.seen.filter((line) => line.includes(secret)))];
  }
}

function serverConfig(ws: Workspace, lines: string[]): Promise<void> {
  return writeFile(
    ws.configFile,
    ['state_dir: ./state', 'servers:', '  pg:', ...lines.map((l) => `    ${l}`), '    immediate_checkpoint: true', '    repositories:', '      - { type: posix, path: ./repo }', ''].join('\n'),
  );
}

/** `pgharbor receive-wal pg` in the background, as the postgres OS user. */
function startReceiver(ws: Workspace): ResultPromise & { output(): string } {
  const user = pgOsUser();
  const asPg = process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {};
  const child = execa(process.execPath, [CLI, '--config', ws.configFile, 'receive-wal', 'pg'], { ...asPg, env: { HOME: os.tmpdir() }, reject: false, stdin: 'ignore', all: true, buffer: true });
  let text = '';
  child.all?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return Object.assign(child, { output: () => text });
}

describe('no password on any command line', () => {
  let ws: Workspace;
  // Distinct, unguessable passwords: a hit can only be a leak.
  const inlineSecret = `inl-${randomBytes(9).toString('hex')}`;
  const fileSecret = `fil-${randomBytes(9).toString('hex')}`;
  let tcp: string;
  let expected: string;

  beforeAll(async () => {
    ws = await createWorkspace({ asPgUser: true });
    tcp = ws.cluster.tcpConninfo; // host=127.0.0.1: pg_hba.conf demands scram-sha-256 there, replication included
    await ws.cluster.query('CREATE TABLE kept AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g');
    expected = (await ws.cluster.query<{ s: string }>('SELECT md5(string_agg(v, \',\' ORDER BY id)) AS s FROM kept'))[0].s;
  });
  afterAll(async () => ws?.cleanup());

  const backupWhileSampling = async (secret: string) => {
    const sampler = new ArgvSampler();
    sampler.start();
    const backup = await ws.run(['--json', 'backup', 'pg']);
    sampler.stop();
    await new Promise((r) => setTimeout(r, 200)); // the last ps outputs
    return { backup, sampler, leaks: sampler.containing(secret) };
  };

  it('password inline in conninfo: the backup authenticates in-process (no child gets it), nothing shows it; the backup restores', async () => {
    await ws.cluster.query(`ALTER ROLE postgres PASSWORD '${inlineSecret}'`);
    // max_rate: a copy slow enough (≈ 2 s) for the sampler to look many times.
    await serverConfig(ws, [`conninfo: "${tcp} password=${inlineSecret}"`, 'max_rate: 16M']);
    const { backup, sampler, leaks } = await backupWhileSampling(inlineSecret);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    expect(sampler.samples).toBeGreaterThan(10);
    expect(sampler.of('pg_basebackup'), 'pgharbor speaks BASE_BACKUP itself: no pg_basebackup runs').toEqual([]);
    expect(leaks).toEqual([]);
    expect(backup.stdout + backup.stderr).not.toContain(inlineSecret);

    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', JSON.parse(backup.stdout).id, target]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    const restored = await ws.startRestored(target);
    expect((await restored.query<{ s: string }>('SELECT md5(string_agg(v, \',\' ORDER BY id)) AS s FROM kept'))[0].s).toBe(expected);

    // --standby: primary_conninfo is written without the password (docs/wal-archiving.md: the standby's
    // OS user keeps it in ~/.pgpass), and nothing printed shows it.
    const standby = await ws.restoreTarget();
    for (const json of [false, true]) {
      const target = json ? await ws.restoreTarget() : standby;
      const result = await ws.run([...(json ? ['--json'] : []), 'restore', 'pg', 'latest', target, '--standby']);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/primary_conninfo.*host=''127\.0\.0\.1''/);
      expect(result.stdout + result.stderr).not.toContain(inlineSecret);
    }
    const autoConf = path.join(standby, 'postgresql.auto.conf');
    expect(await readFile(autoConf, 'utf8')).toMatch(/primary_conninfo = 'host=''127\.0\.0\.1''/);
    expect(await readFile(autoConf, 'utf8')).not.toContain(inlineSecret);
    expect((await stat(autoConf)).mode & 0o077).toBe(0);
  });

  it('password from a file: the same, and a hook script does not receive it either', async () => {
    await ws.cluster.query(`ALTER ROLE postgres PASSWORD '${fileSecret}'`);
    const pwFile = path.join(ws.dir, 'pg.pw');
    await writeFile(pwFile, `${fileSecret}\n`, { mode: 0o600 });
    await chownToPgUser(pwFile);
    const hookOut = path.join(ws.dir, 'hook-env.txt');
    const hook = path.join(ws.dir, 'hook.sh');
    await writeFile(hook, `#!/bin/sh\nenv > '${hookOut}'\n`);
    await chmod(hook, 0o755);
    await serverConfig(ws, [`conninfo: "${tcp}"`, 'password: { from_file: ./pg.pw }', 'max_rate: 16M', `pre_backup_script: ${hook}`]);
    const { backup, sampler, leaks } = await backupWhileSampling(fileSecret);
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(sampler.of('pg_basebackup')).toEqual([]);
    expect(leaks).toEqual([]);
    expect(await readFile(hookOut, 'utf8')).not.toContain(fileSecret);

    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', 'latest', target])).exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    expect((await restored.query<{ n: string }>('SELECT count(*)::text AS n FROM kept'))[0].n).toBe('50000');
  });

  it('receive-wal: pg_receivewal (slot creation included) never shows the inline password', async () => {
    await ws.cluster.query(`ALTER ROLE postgres PASSWORD '${inlineSecret}'`);
    await serverConfig(ws, [`conninfo: "${tcp} password=${inlineSecret}"`, 'streaming_archiver: true']);
    const sampler = new ArgvSampler();
    sampler.start();
    const created = await ws.run(['receive-wal', '--create-slot', 'pg']);
    expect(created.exitCode, created.stderr).toBe(0);
    const receiver = startReceiver(ws);
    try {
      await waitFor('pg_receivewal to stream', async () => (await ws.cluster.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = 'pgharbor_receive_wal' AND state = 'streaming'`)).length > 0 || undefined, 30_000);
      await ws.cluster.query('INSERT INTO kept VALUES (0, \'x\')');
      await ws.cluster.query('SELECT pg_switch_wal()');
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      sampler.stop();
      await ws.run(['receive-wal', '--stop', 'pg']);
      await receiver;
    }
    expect(sampler.of('pg_receivewal').length, receiver.output()).toBeGreaterThan(0);
    expect(sampler.containing(inlineSecret)).toEqual([]);
    expect(receiver.output()).not.toContain(inlineSecret);
  });

  it('a wrong password fails with a message that does not repeat it', async () => {
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    await serverConfig(ws, [`conninfo: "${tcp} password=${wrong}"`]);
    const backup = await ws.run(['backup', 'pg']);
    expect(backup.exitCode).toBe(1);
    expect(backup.stderr).toMatch(/authentication failed/);
    expect(backup.stderr + backup.stdout).not.toContain(wrong);
  });
});
