import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerPrefix, answerSuffix, startWalsenderProxy, wire, type WalsenderProxy } from './walsender-proxy.js';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { pack as tarPack } from 'tar-stream';
import { chownToPgUser, pgOsUser, startS3Server, startSshd, type SandboxS3Server, type SandboxSshd } from '@pgharbor/sandbox';
import { createTablespaceWithTable, createWorkspace, pgharbor, type Workspace } from './harness.js';
import { checksummedJson, type BackupManifest } from '@pgharbor/core';

/**
 * A repository is untrusted input (docs/security.md, "Writes stay inside
 * the target"): whoever can write it plants manifests. Each attack below
 * is a real backup's manifest, tampered with, planted under a later backup
 * id, in a posix repository stored plain and in an S3 repository (s3rver)
 * stored compressed. Restore, delta restore, verify's copy and remote
 * restore's staging refuse it before writing anything, naming the backup,
 * the entry and why; nothing appears outside the target (a sentinel
 * directory is compared before and after); the intact backup beside it is
 * still "latest", restores, and PostgreSQL starts on it with the data.
 */

const BUCKET = 'hostile';
const S3_PREFIX = 'hp';
const PLANTED_BASE = '20991231T2359';

interface Entry {
  path: string;
  type: string;
  linkTarget?: string;
  reference?: string;
  [key: string]: unknown;
}
interface Manifest {
  id: string;
  systemIdentifier: string;
  files: Entry[];
  tablespaces: { oid: number; name: string; location: string }[];
  [key: string]: unknown;
}

interface Repo {
  n: number;
  label: string;
  id: string;
  get(key: string): Promise<Buffer>;
  put(key: string, body: Buffer): Promise<void>;
}

/** Every name under `root` with the bytes' sha256 (or a link's target): equal snapshots mean nothing was written there. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      const rel = path.relative(root, p);
      if (entry.isSymbolicLink()) out[rel] = `-> ${await readlink(p)}`;
      else if (entry.isDirectory()) {
        out[`${rel}/`] = 'dir';
        await walk(p);
      } else out[rel] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  await walk(root);
  return out;
}

describe('hostile repository content: writes stay inside the target', () => {
  let ws: Workspace;
  let s3: SandboxS3Server;
  let sshd: SandboxSshd;
  let client: S3Client;
  let sentinel: string;
  let sentinelBefore: Record<string, string>;
  let farBefore: string;
  const repos: Repo[] = [];
  let plantedCount = 0;
  /** Planted ids per repository, in order. */
  const planted = new Map<Repo, string[]>();
  let targets = 0;

  /** A fresh data directory and tablespace directory to restore into. */
  const freshTarget = async () => {
    const n = ++targets;
    await ws.restoreTarget(`targets/t${n}`);
    const data = await ws.restoreTarget(`targets/t${n}/data`);
    const space = await ws.restoreTarget(`targets/t${n}/space`);
    return { data, space };
  };

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], conditionalWrites: true });
    process.env.PGH_HP_S3_KEY_ID = s3.accessKeyId;
    process.env.PGH_HP_S3_SECRET = s3.secretAccessKey;
    client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    ws = await createWorkspace();
    await mkdir(path.join(ws.dir, 'targets'), { mode: 0o755 });
    await chownToPgUser(path.join(ws.dir, 'targets'));
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(
      ws.configFile,
      config.replace(
        '      - { type: posix, path: ./repo }\n',
        [
          '      - { type: posix, path: ./repo, compression: none }',
          `      - { type: s3, name: s3, endpoint: "${s3.endpoint}", force_path_style: true, bucket: ${BUCKET}, prefix: ${S3_PREFIX},` +
            ' access_key_id: { from_env: PGH_HP_S3_KEY_ID }, secret_access_key: { from_env: PGH_HP_S3_SECRET }, compression: zstd }',
          '',
        ].join('\n'),
      ),
    );
    await createTablespaceWithTable(ws);
    farBefore = await ws.cluster.tableChecksum('postgres', 'far', 'id');

    sentinel = path.join(ws.dir, 'sentinel');
    await mkdir(sentinel, { mode: 0o777 });
    await writeFile(path.join(sentinel, 'marker'), 'nothing may be written here\n');
    sentinelBefore = await snapshot(sentinel);

    for (const n of [1, 2]) {
      const backup = await ws.run(['--json', 'backup', 'pg', '--repo', String(n)]);
      expect(backup.stderr).not.toMatch(/ERROR/);
      expect(backup.exitCode).toBe(0);
      const id = JSON.parse(backup.stdout).id as string;
      if (n === 1) {
        repos.push({
          n,
          label: 'posix, stored plain',
          id,
          get: (key) => readFile(path.join(ws.repoDir, key)),
          put: async (key, body) => {
            await mkdir(path.dirname(path.join(ws.repoDir, key)), { recursive: true });
            await writeFile(path.join(ws.repoDir, key), body);
          },
        });
      } else {
        repos.push({
          n,
          label: 's3, stored compressed (zstd)',
          id,
          get: async (key) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${S3_PREFIX}/${key}` }))).Body!.transformToByteArray()),
          put: async (key, body) => {
            await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${S3_PREFIX}/${key}`, Body: body }));
          },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 1100)); // backup ids are seconds
    }
    sshd = await startSshd({ loginUser: pgOsUser() });
  });
  afterAll(async () => {
    await ws?.cleanup();
    await s3?.destroy();
    await sshd?.destroy();
  });

  /** The intact manifest, changed by `tamper`, planted under a new, later id; its files read the intact backup's bytes. */
  async function plant(repo: Repo, tamper: (m: Manifest, stored: (p: string) => Entry) => void, id = `${PLANTED_BASE}${String(++plantedCount).padStart(2, '0')}`): Promise<string> {
    const original = JSON.parse((await repo.get(`pg/backups/${repo.id}/manifest.json`)).toString('utf8')) as Manifest;
    planted.set(repo, [...(planted.get(repo) ?? []), id]);
    const { checksum: _ownChecksum, ...m } = structuredClone(original) as Manifest & { checksum?: string };
    m.id = id;
    for (const f of m.files) if (f.type === 'file' && f.size !== 0) f.reference ??= repo.id;
    const stored = (p: string) => ({ ...m.files.find((f) => f.path === p)! });
    tamper(m, stored);
    // PostgreSQL's backup_manifest beside it, so that verify --pg-verifybackup goes as far as writing its copy.
    await repo.put(`pg/backups/${id}/backup_manifest`, await repo.get(`pg/backups/${repo.id}/backup_manifest`));
    // With the checksum a plain repository's manifests carry: anyone who can write the repository can recompute it.
    await repo.put(`pg/backups/${id}/manifest.json`, Buffer.from(checksummedJson(m as unknown as BackupManifest)));
    return id;
  }

  /** From any depth, this many ".." reach "/": the path then names the sentinel. */
  const climb = () => `${'../'.repeat(30)}${sentinel.slice(1)}`;

  /** The entry at `from` renamed to `to`: a real file's bytes, so that without the checks they would land there intact. */
  const move = (m: Manifest, from: string, to: string) => {
    m.files.find((f) => f.path === from)!.path = to;
  };
  const attacks: [string, (m: Manifest, stored: (p: string) => Entry) => void, string][] = [
    ['a traversal name', (m) => move(m, 'PG_VERSION', `${climb()}/pwned-traversal`), 'the path has a ".." part'],
    ['an absolute name', (m) => move(m, 'PG_VERSION', `${sentinel}/pwned-absolute`), 'the path is absolute'],
    [
      'a link, then a file through it',
      (m, stored) => {
        m.files.push({ ...stored('base'), path: 'evil', type: 'symlink', linkTarget: sentinel });
        move(m, 'PG_VERSION', 'evil/pwned-link');
      },
      'entry "evil": a link outside pg_tblspc/<oid> and pg_wal',
    ],
    [
      'a link planted beside a tablespace link',
      (m, stored) => {
        m.files.push({ ...stored('base'), path: 'pg_tblspc/99999', type: 'symlink', linkTarget: sentinel });
        move(m, 'PG_VERSION', 'pg_tblspc/99999/pwned-beside');
      },
      ': pg_tblspc/99999 is not a tablespace of this backup',
    ],
    ['a duplicate entry', (m, stored) => m.files.push(stored('PG_VERSION')), 'entry "PG_VERSION": the path is listed twice'],
    [
      "another backup's manifest under a later id",
      (m) => {
        m.id = repos[0].id;
      },
      'but was found in the directory of',
    ],
    [
      "another cluster's manifest",
      (m) => {
        m.systemIdentifier = '7000000000000000001';
      },
      "it names cluster 7000000000000000001, but the repository's identity file says",
    ],
  ];

  for (const repoIndex of [0, 1]) {
    describe(`repository ${repoIndex + 1}`, () => {
      it.each(attacks)('restore refuses %s before writing anything (exit 1), naming backup, entry and why', async (_what, tamper, reason) => {
        const repo = repos[repoIndex];
        const id = await plant(repo, tamper);
        const { data, space } = await freshTarget();
        const result = await ws.run(['restore', 'pg', id, data, '--repo', String(repo.n), '--tablespace-map', `extra=${space}`]);
        expect(result.exitCode).toBe(1);
        expect(result.stderr).toContain(`ERROR: manifest of backup ${id} in `);
        expect(result.stderr).toContain(reason);
        expect(result.stderr).toMatch(/HINT: .*nothing was written/);
        expect(result.stderr).not.toMatch(/\n\s+at /); // one line, no stack
        expect(await readdir(data)).toEqual([]);
        expect(await readdir(space)).toEqual([]);
        expect(await snapshot(sentinel)).toEqual(sentinelBefore);
      });

      it.each(attacks.slice(0, 4))('verify --pg-verifybackup refuses %s; its copy writes nothing outside', async (_what, tamper, reason) => {
        const repo = repos[repoIndex];
        const id = await plant(repo, tamper);
        const temp = await ws.restoreTarget(`targets/verify-${++targets}`);
        const result = await ws.run(['verify', 'pg', id, '--repo', String(repo.n), '--pg-verifybackup', '--temp-dir', temp]);
        expect(result.exitCode).toBe(1);
        expect(result.stderr).toContain(`manifest of backup ${id} in `);
        expect(result.stderr).toContain(reason);
        expect(await readdir(temp)).toEqual([]);
        expect(await snapshot(sentinel)).toEqual(sentinelBefore);
      });

      it('a pg_wal link in the manifest restores as a plain directory: nothing goes where the link pointed, and PostgreSQL starts', async () => {
        const repo = repos[repoIndex];
        // A valid manifest (pg_wal may be a link), planted under a later id (a backup can only reuse bytes of older ones);
        // deleted at the end, so that "latest" below is the intact backup again.
        const id = await plant(
          repo,
          (m) => {
            const wal = m.files.find((f) => f.path === 'pg_wal')!;
            Object.assign(wal, { type: 'symlink', linkTarget: sentinel });
          },
          '20991231T235800',
        );
        planted.set(repo, planted.get(repo)!.filter((p) => p !== id));
        const { data, space } = await freshTarget();
        const result = await ws.run(['restore', 'pg', id, data, '--repo', String(repo.n), '--tablespace-map', `extra=${space}`]);
        expect(result.stderr).not.toMatch(/ERROR/);
        expect(result.exitCode).toBe(0);
        expect((await lstat(path.join(data, 'pg_wal'))).isDirectory()).toBe(true);
        expect(await snapshot(sentinel)).toEqual(sentinelBefore);
        const restored = await ws.startRestored(data);
        expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(farBefore);
        await restored.stop();
        const removed = await ws.run(['delete', 'pg', id, '--repo', String(repo.n)]);
        expect(removed.exitCode, removed.stderr).toBe(0);
      });

      it('list-backups shows the planted manifests as INVALID; "latest" skips them with a warning and restores the intact backup, which starts', async () => {
        const repo = repos[repoIndex];
        const list = await ws.run(['list-backups', 'pg', '--repo', String(repo.n)]);
        expect(list.exitCode).toBe(0);
        const traversal = planted.get(repo)![0];
        expect(list.stdout).toMatch(new RegExp(`pg ${traversal} - INVALID \\(manifest of backup ${traversal} in .*the path has a "\\.\\." part\\)`));
        expect(list.stdout).toContain(`pg ${repo.id} - `);

        const { data, space } = await freshTarget();
        const result = await ws.run(['--json', 'restore', 'pg', 'latest', data, '--repo', String(repo.n), '--tablespace-map', `extra=${space}`]);
        expect(result.stderr).not.toMatch(/ERROR/);
        expect(result.exitCode).toBe(0);
        expect(result.stderr).toMatch(new RegExp(`WARN: manifest of backup ${PLANTED_BASE}\\d\\d in .* is invalid: .*; skipped`));
        expect(JSON.parse(result.stdout).backupId).toBe(repo.id);
        expect(await snapshot(sentinel)).toEqual(sentinelBefore);
        const restored = await ws.startRestored(data);
        expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(farBefore);
        await restored.stop();
      });

      it('delete removes a planted backup whose manifest is invalid, and nothing else', async () => {
        const repo = repos[repoIndex];
        const traversal = planted.get(repo)![0];
        const removed = await ws.run(['delete', 'pg', traversal, '--repo', String(repo.n)]);
        expect(removed.exitCode, removed.stderr).toBe(0);
        expect(removed.stderr).toMatch(/whose manifest is invalid/);
        const list = await ws.run(['list-backups', 'pg', '--repo', String(repo.n)]);
        expect(list.stdout).not.toContain(traversal);
        expect(list.stdout).toContain(`pg ${repo.id} - `);
        expect(await snapshot(sentinel)).toEqual(sentinelBefore);
      });
    });
  }

  it('delta restore refuses a planted manifest and leaves the existing data directory as it was', async () => {
    const repo = repos[0];
    const { data, space } = await freshTarget();
    expect((await ws.run(['restore', 'pg', repo.id, data, '--tablespace-map', `extra=${space}`])).exitCode).toBe(0);
    const before = { data: await snapshot(data), space: await snapshot(space) };
    for (const [, tamper, reason] of attacks.slice(0, 4)) {
      const id = await plant(repo, tamper);
      const result = await ws.run(['restore', 'pg', id, data, '--delta', '--tablespace-map', `extra=${space}`]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`manifest of backup ${id} in `);
      expect(result.stderr).toContain(reason);
      expect({ data: await snapshot(data), space: await snapshot(space) }).toEqual(before);
      expect(await snapshot(sentinel)).toEqual(sentinelBefore);
    }
  });

  it('delta restore into a data directory with planted links (beside the tablespace link, in place of its version directory) follows none of them, and PostgreSQL starts', async () => {
    const repo = repos[0];
    const { data, space } = await freshTarget();
    expect((await ws.run(['restore', 'pg', repo.id, data, '--tablespace-map', `extra=${space}`])).exitCode).toBe(0);
    // Someone with write access to the stopped cluster plants links to the sentinel.
    const [versionDir] = await readdir(space);
    await rename(path.join(space, versionDir), path.join(space, `${versionDir}.moved`));
    await symlink(sentinel, path.join(space, versionDir));
    await symlink(sentinel, path.join(data, 'pg_tblspc', '99999'));
    await symlink(sentinel, path.join(data, 'base', 'evil'));
    const result = await ws.run(['--json', 'restore', 'pg', repo.id, data, '--delta', '--tablespace-map', `extra=${space}`]);
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.exitCode).toBe(0);
    expect(await snapshot(sentinel)).toEqual(sentinelBefore);
    expect((await lstat(path.join(space, versionDir))).isDirectory()).toBe(true);
    await expect(lstat(path.join(data, 'pg_tblspc', '99999'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(path.join(data, 'base', 'evil'))).rejects.toThrow(/ENOENT/);
    const restored = await ws.startRestored(data);
    expect(await restored.tableChecksum('postgres', 'far', 'id')).toBe(farBefore);
    await restored.stop();
  });

  it('remote restore refuses a planted manifest before staging anything: nothing on the remote host, nothing outside the staging directory', async () => {
    const repo = repos[0];
    const staging = await ws.restoreTarget('targets/staging');
    const remote = await ws.restoreTarget('targets/remote');
    const ssh = [
      'ssh', '-p', String(sshd.port), '-i', sshd.clientKeyFile,
      '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
      `${pgOsUser().name}@127.0.0.1`,
    ].join(' ');
    for (const [, tamper, reason] of [attacks[0], attacks[2], attacks[3]]) {
      const id = await plant(repo, tamper);
      const result = await ws.run([
        'restore', 'pg', id, path.join(remote, 'data'), '--remote-ssh-command', ssh, '--staging-dir', staging,
        '--tablespace-map', `extra=${path.join(remote, 'space')}`,
      ]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`manifest of backup ${id} in `);
      expect(result.stderr).toContain(reason);
      expect(await readdir(remote)).toEqual([]);
      expect(await readdir(staging)).toEqual([]);
      expect(await snapshot(sentinel)).toEqual(sentinelBefore);
    }
  });

  describe('a hostile name in the server stream fails the backup at ingest', () => {
    /**
     * A stand-in for the server's WAL sender (a loopback proxy answering
     * BASE_BACKUP) that sends a crafted tar: the thing under test is our tar
     * reader, not the server.
     */
    const proxies: WalsenderProxy[] = [];
    afterAll(async () => {
      for (const proxy of proxies) await proxy.close();
    });
    async function fakeServerConfig(entries: { name: string; type: 'file' | 'symlink' | 'directory'; content?: string; linkname?: string }[]): Promise<string> {
      const n = ++targets;
      const dir = path.join(ws.dir, `fake-${n}`);
      await mkdir(dir, { recursive: true });
      const pack = tarPack();
      const done = (async () => {
        const parts: Buffer[] = [];
        for await (const part of pack) parts.push(part as Buffer);
        return Buffer.concat(parts);
      })();
      const label = 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIME: 2026-12-07 12:00:00 UTC\nLABEL: x\nSTART TIMELINE: 1\n';
      for (const e of [{ name: 'backup_label', type: 'file' as const, content: label }, { name: 'PG_VERSION', type: 'file' as const, content: '15\n' }, ...entries]) {
        pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o600 }, e.content === undefined ? undefined : Buffer.from(e.content));
      }
      pack.finalize();
      const tar = await done;
      // A complete answer that says where the backup ended, so that without the check the backup would end DONE.
      const proxy = await startWalsenderProxy(ws.cluster, { kind: 'answer', answer: () => Buffer.concat([answerPrefix(), wire.copyData('d', tar), answerSuffix()]) });
      proxies.push(proxy);
      const streaming = `    streaming_conninfo: "host=127.0.0.1 port=${proxy.port} user=postgres dbname=postgres sslmode=disable"\n`;
      const config = (await readFile(ws.configFile, 'utf8')).replace(/    repositories:\n[\s\S]*$/, `${streaming}    repositories:\n      - { type: posix, path: ${path.join(dir, 'repo')} }\n`);
      await writeFile(path.join(dir, 'pgharbor.config.yaml'), config);
      return path.join(dir, 'pgharbor.config.yaml');
    }

    it.each<[string, { name: string; type: 'file' | 'symlink' | 'directory'; content?: string; linkname?: string }, string]>([
      ['a traversal name', { name: '../../../../../../../../../../tmp/pgharbor-pwned-by-stream', type: 'file', content: 'x' }, 'the path has a ".." part'],
      ['an absolute name', { name: '/tmp/pgharbor-pwned-by-stream', type: 'file', content: 'x' }, 'the path is absolute'],
      ['a link outside pg_tblspc', { name: 'evil', type: 'symlink', linkname: '/tmp' }, 'a link outside pg_tblspc/<oid> and pg_wal'],
      ['a name under pg_tblspc that is no tablespace', { name: 'pg_tblspc/evil', type: 'symlink', linkname: '/tmp' }, 'pg_tblspc/evil is not a tablespace of this backup'],
    ])('%s: FAILED, naming the entry', async (_what, entry, reason) => {
      const config = await fakeServerConfig([entry]);
      const result = await pgharbor(['--config', config, 'backup', 'pg']);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`the server's backup stream has an entry ${JSON.stringify(entry.name)} that pgharbor will not store: ${reason}`);
      const list = await pgharbor(['--config', config, '--json', 'list-backups', 'pg']);
      const [backup] = JSON.parse(list.stdout) as { status: string; error: { message: string } }[];
      expect(backup.status).toBe('FAILED');
      expect(backup.error.message).toContain(JSON.stringify(entry.name));
    });
  });
});
