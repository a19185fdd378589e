import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_PASSWORD, freePort } from '@pgharbor/sandbox';
import { createWorkspace, pgharbor, scratchDir, type CliResult, type Workspace } from './harness.js';

/**
 * What a user sees when something is wrong: the real CLI against a real
 * PostgreSQL, each failure answered with the right exit code, a one-line
 * ERROR that names the problem, a HINT, and nothing written anywhere.
 */

/** The ERROR line (one line, followed at once by its HINT line), else a failed expectation. */
function expectError(result: CliResult, exitCode: number): { error: string; hint: string } {
  const context = `exit ${result.exitCode}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
  expect(result.exitCode, context).toBe(exitCode);
  const lines = result.stderr.split('\n');
  const at = lines.findIndex((l) => l.startsWith('ERROR: '));
  expect(at, `no ERROR line in stderr\n${context}`).toBeGreaterThanOrEqual(0);
  expect(lines.filter((l) => l.startsWith('ERROR: ')), context).toHaveLength(1);
  // A one-line message: the HINT follows the ERROR line directly.
  expect(lines[at + 1] ?? '', `the ERROR is not one line followed by a HINT\n${context}`).toMatch(/^HINT: \S/);
  // No stack traces for errors a user can act on.
  expect(result.stderr, context).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(result.stdout, `an error printed command output\n${context}`).toBe('');
  return { error: lines[at].slice('ERROR: '.length), hint: lines[at + 1].slice('HINT: '.length) };
}

function expectOk(result: CliResult): void {
  expect(result.exitCode, `exit ${result.exitCode}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  expect(result.stderr).not.toMatch(/^ERROR/m);
}

/** Backup ids that have a directory under <repo>/pg/backups (none when the repository was never written). */
async function backupDirs(repo: string, server = 'pg'): Promise<string[]> {
  return readdir(path.join(repo, server, 'backups')).catch(() => []);
}

/** Every path below `dir`, relative, sorted (for "nothing was added" checks). */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      out.push(r);
      if (entry.isDirectory()) await walk(path.join(d, entry.name), r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

describe('faults: the CLI fails cleanly, explains, and writes nothing', () => {
  let ws: Workspace;
  /** The backup taken in beforeAll into ws.repoDir. */
  let backupId: string;
  let configs = 0;

  /**
   * A config file in the workspace directory describing server "pg" (the
   * sandbox cluster unless `server` overrides the lines) with a posix
   * repository of its own, so each test starts from an unwritten repository.
   */
  async function writeConfig(options: { server?: string[]; repo?: string; top?: string[]; name?: string; dir?: string } = {}) {
    const n = ++configs;
    const dir = options.dir ?? ws.dir;
    const repoRel = options.repo ?? `./repo-${n}`;
    const file = path.join(dir, options.name ?? `config-${n}.yaml`);
    await writeFile(
      file,
      [
        ...(options.top ?? []),
        'servers:',
        '  pg:',
        ...(options.server ?? [`conninfo: "${ws.cluster.conninfo}"`, 'immediate_checkpoint: true']).map((l) => `    ${l}`),
        '    repositories:',
        `      - { type: posix, path: ${repoRel} }`,
        '',
      ].join('\n'),
    );
    const run = (args: string[], env?: Record<string, string>) => pgharbor(['--config', file, ...args], { env });
    return { file, repo: path.resolve(dir, repoRel), run };
  }

  beforeAll(async () => {
    ws = await createWorkspace();
    await ws.cluster.pgbench(['-i', '-s', '1', '-q', 'postgres']);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expectOk(backup);
    backupId = JSON.parse(backup.stdout).id;
  });
  afterAll(async () => ws?.cleanup());

  describe('usage and configuration errors: exit code 2', () => {
    it('a backup id that is a path or not an id is refused in one line, before any storage is touched', async () => {
      for (const args of [['show-backup', 'pg', '../../etc'], ['delete', 'pg', '../x'], ['verify', 'pg', 'a/b'], ['keep', 'pg', '..'], ['list-files', 'pg', '20261125T142600/../x'], ['restore', 'pg', '../x', path.join(ws.dir, 'never')]]) {
        const result = await ws.run(args);
        expect(result.exitCode, args.join(' ')).toBe(2);
        expect(result.stderr).toMatch(/^ERROR: "[^"]+" is not a backup id\nHINT: backup ids are UTC start times/);
        expect(result.stderr).not.toMatch(/\n\s+at |invalid storage key/);
      }
      expect(existsSync(path.join(ws.dir, 'never'))).toBe(false);
    });

    it('an unknown server name lists the configured servers', async () => {
      const cfg = await writeConfig({
        top: [],
        server: [`conninfo: "${ws.cluster.conninfo}"`],
      });
      // A second server, so the list has more than one name in it.
      await writeFile(cfg.file, (await readFile(cfg.file, 'utf8')) + `  pg2:\n    conninfo: "${ws.cluster.conninfo}"\n    repositories: [{ type: posix, path: ./repo-pg2 }]\n`);
      const result = await cfg.run(['backup', 'nosuch']);
      const { error, hint } = expectError(result, 2);
      expect(error).toContain('nosuch');
      expect(error).toMatch(/unknown server/);
      expect(error).toContain('pg, pg2');
      expect(hint).toContain(cfg.file);
      expect(existsSync(cfg.repo)).toBe(false);
      expect(existsSync(path.join(ws.dir, 'repo-pg2'))).toBe(false);

      // The same for every command that takes a server.
      for (const args of [['check', 'nosuch'], ['list-backups', 'nosuch'], ['restore', 'nosuch', 'latest', path.join(ws.dir, 'never')]]) {
        const other = expectError(await cfg.run(args), 2);
        expect(other.error).toMatch(/unknown server "nosuch".*pg, pg2/);
      }
      expect(existsSync(path.join(ws.dir, 'never'))).toBe(false);
    });

    it('a misspelt server setting names the file, the key path and what is allowed', async () => {
      const cfg = await writeConfig({ server: [`conninfoo: "${ws.cluster.conninfo}"`, 'immediate_checkpoint: true'] });
      const { error, hint } = expectError(await cfg.run(['backup', 'pg']), 2);
      expect(error).toContain(cfg.file);
      expect(error).toContain('servers.pg.conninfoo');
      expect(error).toMatch(/not a known setting/);
      expect(hint).toMatch(/allowed/);
      expect(hint).toMatch(/\bconninfo\b/);
      expect(hint).toMatch(/\brepositories\b/);
      expect(existsSync(cfg.repo)).toBe(false);
    });

    it('a misspelt repository setting names the key path inside the repositories list', async () => {
      const cfg = await writeConfig();
      // "pth" instead of "path" in the repository entry.
      await writeFile(cfg.file, (await readFile(cfg.file, 'utf8')).replace('path: ./repo-', 'pth: ./repo-'));
      const result = await cfg.run(['backup', 'pg']);
      const { error, hint } = expectError(result, 2);
      expect(error).toContain(cfg.file);
      expect(error).toContain('servers.pg.repositories[0].pth');
      expect(hint).toMatch(/allowed/);
      expect(hint).toMatch(/\bpath\b/);
      expect(existsSync(cfg.repo)).toBe(false);
      expect(await readdir(ws.dir)).not.toContain('pth');
    });

    it('an unknown setting beside a valid path in a repository entry is named too', async () => {
      const cfg = await writeConfig();
      await writeFile(cfg.file, (await readFile(cfg.file, 'utf8')).replace(/path: (\.\/repo-\d+)/, 'path: $1, compresion: gzip'));
      const { error, hint } = expectError(await cfg.run(['backup', 'pg']), 2);
      expect(error).toContain(cfg.file);
      expect(error).toContain('servers.pg.repositories[0].compresion');
      expect(hint).toMatch(/allowed.*\bpath\b/);
      expect(existsSync(cfg.repo)).toBe(false);
    });

    it('a value of the wrong type names the key and the expected type', async () => {
      const cfg = await writeConfig({ server: [`conninfo: "${ws.cluster.conninfo}"`, 'immediate_checkpoint: "yes"'] });
      const { error } = expectError(await cfg.run(['backup', 'pg']), 2);
      expect(error).toContain(cfg.file);
      expect(error).toContain('servers.pg.immediate_checkpoint');
      expect(error).toMatch(/boolean/);
      expect(existsSync(cfg.repo)).toBe(false);
    });

    it('no config file anywhere up from the working directory: a hint to create pgharbor.config.yaml', async () => {
      const empty = await scratchDir('pgharbor-noconfig-');
      try {
        const { error, hint } = expectError(await pgharbor(['list-servers'], { cwd: empty }), 2);
        expect(error).toMatch(/no pgharbor config file found/);
        expect(hint).toContain('pgharbor.config.yaml');
        expect(hint).toContain(empty);
        expectError(await pgharbor(['backup', 'pg'], { cwd: empty }), 2);
        expect(await readdir(empty)).toEqual([]);
      } finally {
        await rm(empty, { recursive: true, force: true });
      }
    });

    it('--config naming a missing file', async () => {
      const missing = path.join(ws.dir, 'does-not-exist.yaml');
      const { error, hint } = expectError(await pgharbor(['--config', missing, 'backup', 'pg']), 2);
      expect(error).toContain('does-not-exist.yaml');
      expect(error).toMatch(/does not exist/);
      expect(hint).toMatch(/--config/);
      expect(existsSync(missing)).toBe(false);
    });

    it('a plugin that cannot be loaded', async () => {
      const cfg = await writeConfig({ top: ['plugins: ["./plugins/nothere.mjs"]'] });
      const { error, hint } = expectError(await cfg.run(['backup', 'pg']), 2);
      expect(error).toContain('./plugins/nothere.mjs');
      expect(hint).toContain(ws.dir);
      expect(existsSync(cfg.repo)).toBe(false);
    });
  });

  describe('connection errors: exit code 1', () => {
    it('a port nobody listens on: "cannot connect", nothing written', async () => {
      const port = await freePort();
      for (const host of ['127.0.0.1', ws.cluster.socketDir]) {
        const cfg = await writeConfig({ server: [`conninfo: "host=${host} port=${port} user=postgres dbname=postgres"`] });
        const { error, hint } = expectError(await cfg.run(['backup', 'pg']), 1);
        expect(error).toMatch(/cannot connect/);
        expect(error).toContain(`port=${port}`);
        expect(error).toContain(host);
        expect(hint).toMatch(/conninfo/);
        expect(existsSync(cfg.repo)).toBe(false);

        // check reports it as a FAILED line (exit 1) instead of crashing, and writes nothing either.
        const check = await cfg.run(['check', 'pg']);
        expect(check.exitCode).toBe(1);
        expect(check.stdout).toMatch(/PostgreSQL: FAILED \(.*cannot connect/);
        expect(check.stderr).not.toMatch(/^\s+at /m);
      }
    });

    describe('passwords over TCP', () => {
      const WRONG = 'definitely-wrong-secret';
      const tcpServer = () => [`conninfo: "${ws.cluster.tcpConninfo}"`, 'immediate_checkpoint: true', 'password: { from_env: PGH_TEST_PW }'];

      it('a wrong password: "authentication failed", the secret never printed, nothing written', async () => {
        const cfg = await writeConfig({ server: tcpServer() });
        const result = await cfg.run(['backup', 'pg'], { PGH_TEST_PW: WRONG });
        const { error, hint } = expectError(result, 1);
        expect(error).toMatch(/authentication failed/);
        expect(hint).toMatch(/password/);
        expect(result.stdout + result.stderr).not.toContain(WRONG);
        expect(existsSync(cfg.repo)).toBe(false);

        for (const args of [['check', 'pg'], ['--json', 'check', 'pg'], ['--log-level', 'debug', 'backup', 'pg']]) {
          const other = await cfg.run(args, { PGH_TEST_PW: WRONG });
          expect(other.exitCode, other.stdout + other.stderr).toBe(1);
          expect(other.stdout + other.stderr).toMatch(/authentication failed/);
          expect(other.stdout + other.stderr).not.toContain(WRONG);
        }
        expect(await backupDirs(cfg.repo)).toEqual([]);
      });

      it('the environment variable is not set: exit 2 naming it', async () => {
        const cfg = await writeConfig({ server: tcpServer() });
        const env = { ...process.env } as Record<string, string>;
        delete env.PGH_TEST_PW;
        const { error, hint } = expectError(await cfg.run(['backup', 'pg'], env), 2);
        expect(error).toContain('PGH_TEST_PW');
        expect(error).toContain('servers.pg.password');
        expect(hint).toContain('PGH_TEST_PW');
        expect(existsSync(cfg.repo)).toBe(false);
      });

      it('the right password: check passes, a backup works over TCP, and the password is never printed', async () => {
        const cfg = await writeConfig({ server: tcpServer() });
        const env = { PGH_TEST_PW: SANDBOX_PASSWORD };

        const check = await cfg.run(['check', 'pg'], env);
        expectOk(check);
        expect(check.stdout).toMatch(/PostgreSQL: OK/);
        expect(check.stdout).toMatch(/PostgreSQL streaming: OK/);
        expect(check.stdout).not.toMatch(/FAILED/);
        expect(check.stdout + check.stderr).not.toContain(SANDBOX_PASSWORD);

        const json = await cfg.run(['--json', 'check', 'pg'], env);
        expectOk(json);
        const parsed = JSON.parse(json.stdout);
        expect(parsed.ok).toBe(true);
        expect(json.stdout + json.stderr).not.toContain(SANDBOX_PASSWORD);

        // The replication connection of pg_basebackup needs the password too (streaming_password defaults to password).
        const backup = await cfg.run(['--log-level', 'debug', 'backup', 'pg'], env);
        expectOk(backup);
        expect(backup.stdout + backup.stderr).not.toContain(SANDBOX_PASSWORD);
        const list = await cfg.run(['--json', 'list-backups', 'pg'], env);
        expectOk(list);
        expect(JSON.parse(list.stdout).map((b: { status: string }) => b.status)).toEqual(['DONE']);
        expect(list.stdout + list.stderr).not.toContain(SANDBOX_PASSWORD);
        // Nor in anything written to the repository.
        for (const rel of await tree(cfg.repo)) {
          const file = path.join(cfg.repo, rel);
          if ((await stat(file)).isFile() && !rel.endsWith('.dat')) expect(await readFile(file, 'utf8'), rel).not.toContain(SANDBOX_PASSWORD);
        }
      });

      it('a password from a file works the same way', async () => {
        const secretFile = path.join(ws.dir, 'pg.secret');
        await writeFile(secretFile, `${SANDBOX_PASSWORD}\n`, { mode: 0o600 });
        const cfg = await writeConfig({ server: [`conninfo: "${ws.cluster.tcpConninfo}"`, 'password: { from_file: ./pg.secret }'] });
        const check = await cfg.run(['check', 'pg']);
        expectOk(check);
        expect(check.stdout + check.stderr).not.toContain(SANDBOX_PASSWORD);
      });
    });
  });

  describe('repository errors', () => {
    it('a repository path below a regular file: exit 1 naming the path, no backup recorded', async () => {
      const afile = path.join(ws.dir, 'afile');
      await writeFile(afile, 'not a directory\n');
      const cfg = await writeConfig({ repo: './afile/repo' });
      const { error, hint } = expectError(await cfg.run(['backup', 'pg']), 1);
      expect(error).toContain(path.join(ws.dir, 'afile', 'repo'));
      expect(hint.length).toBeGreaterThan(0);
      expect((await stat(afile)).isFile()).toBe(true);
      expect(await readFile(afile, 'utf8')).toBe('not a directory\n');

      const list = await cfg.run(['list-backups', 'pg']);
      // Listing an unusable repository is either "no backups" or an error naming it; never a backup.
      expect(list.stdout).not.toMatch(/DONE|STARTED|FAILED/);

      const check = await cfg.run(['check', 'pg']);
      expect(check.exitCode).toBe(1);
      expect(check.stdout).toMatch(/repository writable: FAILED/);
      expect(await readFile(afile, 'utf8')).toBe('not a directory\n');
    });
  });

  describe('backup ids and restore targets', () => {
    it('a backup id that does not exist: show-backup, restore and delete fail with a hint to list-backups', async () => {
      const missing = '20990101T000000';
      const dest = path.join(ws.dir, 'restore-of-missing');
      const before = await tree(ws.repoDir);
      for (const args of [['show-backup', 'pg', missing], ['restore', 'pg', missing, dest], ['delete', 'pg', missing], ['list-files', 'pg', missing]]) {
        const { error, hint } = expectError(await ws.run(args), 1);
        expect(error).toContain(missing);
        expect(error).toMatch(/does not exist/);
        expect(hint).toMatch(/list-backups/);
      }
      expect(existsSync(dest)).toBe(false);
      expect(await tree(ws.repoDir)).toEqual(before);
      // An existing, empty target is left as it was too.
      const target = await ws.restoreTarget();
      expectError(await ws.run(['restore', 'pg', missing, target]), 1);
      expect(await readdir(target)).toEqual([]);
      // The real backup is still there.
      const list = await ws.run(['--json', 'list-backups', 'pg']);
      expect(JSON.parse(list.stdout).map((b: { id: string }) => b.id)).toEqual([backupId]);
    });

    it('a restore target that is not empty: exit 1, the file stays and nothing is added', async () => {
      const target = await ws.restoreTarget();
      await writeFile(path.join(target, 'keep-me.txt'), 'precious\n');
      await mkdir(path.join(target, 'base'));
      const { error, hint } = expectError(await ws.run(['restore', 'pg', 'latest', target]), 1);
      expect(error).toContain(target);
      expect(error).toMatch(/not empty/);
      expect(hint).toMatch(/empty/);
      expect(await tree(target)).toEqual(['base', 'keep-me.txt']);
      expect(await readFile(path.join(target, 'keep-me.txt'), 'utf8')).toBe('precious\n');
    });

    it('a restore target that is a file: exit 1, the file is untouched', async () => {
      const file = path.join(ws.dir, 'target-is-a-file');
      await writeFile(file, 'x');
      const { error } = expectError(await ws.run(['restore', 'pg', 'latest', file]), 1);
      expect(error).toContain(file);
      expect(await readFile(file, 'utf8')).toBe('x');
    });

    it('restoring when there are no backups: a hint to take one', async () => {
      const cfg = await writeConfig();
      const dest = path.join(ws.dir, 'restore-nothing');
      for (const alias of ['latest', 'oldest']) {
        const { error, hint } = expectError(await cfg.run(['restore', 'pg', alias, dest]), 1);
        expect(error).toMatch(/no completed backup/);
        expect(hint).toMatch(/pgharbor backup pg/);
      }
      expect(existsSync(dest)).toBe(false);
      expect(existsSync(cfg.repo)).toBe(false);
      const show = expectError(await cfg.run(['show-backup', 'pg', 'latest']), 1);
      expect(show.hint).toMatch(/pgharbor backup pg/);
      const list = await cfg.run(['list-backups', 'pg']);
      expectOk(list);
      expect(list.stdout).toMatch(/No backups of pg/);
      expect(existsSync(cfg.repo)).toBe(false);
    });

    it('--json output of list-backups, show-backup, list-files, check and list-servers parses, with sensible fields', async () => {
      const list = await ws.run(['--json', 'list-backups', 'pg']);
      expectOk(list);
      const backups = JSON.parse(list.stdout);
      expect(backups).toHaveLength(1);
      expect(backups[0]).toMatchObject({ id: backupId, server: 'pg', status: 'DONE', walIncluded: true, repository: 'repo1' });
      expect(backups[0].fileCount).toBeGreaterThan(100);
      expect(backups[0].size).toBeGreaterThan(1_000_000);
      expect(backups[0].files).toBeUndefined();

      for (const id of [backupId, 'latest']) {
        const show = await ws.run(['--json', 'show-backup', 'pg', id]);
        expectOk(show);
        const shown = JSON.parse(show.stdout);
        expect(shown).toMatchObject({ id: backupId, server: 'pg', status: 'DONE', previousBackup: null, nextBackup: null });
        expect(shown.startWal).toMatch(/^[0-9A-F]{24}$/);
        expect(shown.stopLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
        expect(Date.parse(shown.stopTime)).toBeGreaterThanOrEqual(Date.parse(shown.startTime));
      }

      const files = await ws.run(['--json', 'list-files', 'pg', backupId]);
      expectOk(files);
      const listed = JSON.parse(files.stdout) as { path: string; size: number; digest: string }[];
      const paths = listed.map((f) => f.path);
      expect(paths).toContain('PG_VERSION');
      expect(paths).toContain('global/pg_control');
      expect(paths.some((p) => /^pg_wal\/[0-9A-F]{24}$/.test(p))).toBe(true);
      for (const f of listed) {
        expect(f.digest).toMatch(/^blake3:[0-9a-f]{64}$/);
        expect(f.size).toBeGreaterThanOrEqual(0);
      }
      const isSegment = (p: string) => /^pg_wal\/[0-9A-F]{24}$/.test(p);
      const dataOnly = JSON.parse((await ws.run(['--json', 'list-files', '--target', 'data', 'pg', backupId])).stdout) as { path: string }[];
      expect(dataOnly.some((f) => isSegment(f.path))).toBe(false);
      expect(dataOnly.map((f) => f.path)).toContain('global/pg_control');
      const walOnly = JSON.parse((await ws.run(['--json', 'list-files', '--target', 'wal', 'pg', backupId])).stdout) as { path: string }[];
      expect(walOnly.length).toBeGreaterThan(0);
      expect(walOnly.every((f) => isSegment(f.path))).toBe(true);

      const check = await ws.run(['--json', 'check', 'pg']);
      expectOk(check);
      const checked = JSON.parse(check.stdout);
      expect(checked).toMatchObject({ server: 'pg', ok: true });
      expect(checked.checks.length).toBeGreaterThan(3);
      for (const c of checked.checks) expect(c).toMatchObject({ name: expect.any(String), ok: true });

      const servers = await ws.run(['--json', 'list-servers']);
      expectOk(servers);
      expect(JSON.parse(servers.stdout)).toEqual([{ name: 'pg', description: '', method: 'basebackup', repositories: ['posix'] }]);
    });
  });

  describe('plugins', () => {
    it('a plugin loaded by a path relative to the config file can veto a backup: exit 1, no backup recorded', async () => {
      await mkdir(path.join(ws.dir, 'plugins'), { recursive: true });
      await writeFile(
        path.join(ws.dir, 'plugins', 'veto.mjs'),
        `export default {
  name: 'veto',
  apply(harbor) {
    harbor.hooks.backup.before.tapPromise('veto', async () => 'maintenance window');
  },
};
`,
      );
      const cfg = await writeConfig({ top: ['plugins: ["./plugins/veto.mjs"]'] });
      // Run from elsewhere: the plugin path is relative to the config file, not to the working directory.
      const elsewhere = await scratchDir('pgharbor-cwd-');
      try {
        const result = await pgharbor(['--config', cfg.file, 'backup', 'pg'], { cwd: elsewhere });
        const { error, hint } = expectError(result, 1);
        expect(error).toMatch(/vetoed/);
        expect(error).toContain('maintenance window');
        expect(hint.length).toBeGreaterThan(0);
        expect(await readdir(elsewhere)).toEqual([]);
      } finally {
        await rm(elsewhere, { recursive: true, force: true });
      }
      expect(await backupDirs(cfg.repo)).toEqual([]);
      const list = await cfg.run(['--json', 'list-backups', 'pg']);
      expectOk(list);
      expect(JSON.parse(list.stdout)).toEqual([]);
    });

    it('a plugin tapping hooks.check adds its own line to check', async () => {
      await mkdir(path.join(ws.dir, 'plugins'), { recursive: true });
      await writeFile(
        path.join(ws.dir, 'plugins', 'window-check.mjs'),
        `export default {
  name: 'window-check',
  apply(harbor) {
    harbor.hooks.check.tapPromise('window-check', async (check) => {
      check.report({ name: 'maintenance window', ok: true, detail: 'none scheduled for ' + check.server.name });
    });
  },
};
`,
      );
      const cfg = await writeConfig({ top: ['plugins:', '  - ./plugins/window-check.mjs'] });
      const check = await cfg.run(['check', 'pg']);
      expectOk(check);
      expect(check.stdout).toContain('maintenance window: OK (none scheduled for pg)');
      const json = JSON.parse((await cfg.run(['--json', 'check', 'pg'])).stdout);
      expect(json.checks).toContainEqual({ name: 'maintenance window', ok: true, detail: 'none scheduled for pg' });
    });
  });

  describe('config discovery', () => {
    it('.pgharborrc.json in a parent directory is found from a subdirectory without --config', async () => {
      const dir = await scratchDir('pgharbor-discover-');
      try {
        const sub = path.join(dir, 'a', 'b');
        await mkdir(sub, { recursive: true });
        await writeFile(
          path.join(dir, '.pgharborrc.json'),
          JSON.stringify({
            servers: {
              discovered: {
                description: 'found by searching upwards',
                conninfo: ws.cluster.conninfo,
                repositories: [{ type: 'posix', path: './repo' }],
              },
            },
          }),
        );
        const text = await pgharbor(['list-servers'], { cwd: sub });
        expectOk(text);
        expect(text.stdout).toMatch(/^discovered\s+-\s+found by searching upwards$/m);
        const json = await pgharbor(['--json', 'list-servers'], { cwd: sub });
        expectOk(json);
        expect(JSON.parse(json.stdout)).toEqual([{ name: 'discovered', description: 'found by searching upwards', method: 'basebackup', repositories: ['posix'] }]);
        // Relative paths in it are relative to the config file, not to the working directory.
        const check = await pgharbor(['--json', 'check', 'discovered'], { cwd: sub });
        expectOk(check);
        expect(JSON.parse(check.stdout).checks).toContainEqual(expect.objectContaining({ name: 'repository writable', ok: true, detail: path.join(dir, 'repo') }));
        expect(await readdir(sub)).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
