import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgharbor, scratchDir } from './harness.js';

// XLOG_PAGE_MAGIC of each major, as read from the first segment of a fresh cluster of each (sandbox servers).
const MAGIC: Record<number, number> = { 13: 0xd106, 14: 0xd10d, 15: 0xd110, 16: 0xd113, 17: 0xd116, 18: 0xd118 };

/** A 16 MiB WAL segment with a long page header of `magic` (system identifier 7000000000000000001). */
async function segment(dir: string, name: string, magic: number): Promise<string> {
  const content = Buffer.alloc(16 * 1024 * 1024);
  content.writeUInt16LE(magic, 0);
  content.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  content.writeUInt32LE(1, 4);
  content.writeBigUInt64LE(7000000000000000001n, 24);
  content.writeUInt32LE(16 * 1024 * 1024, 32);
  content.writeUInt32LE(8192, 36);
  const file = path.join(dir, magic.toString(16), name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  return file;
}

const stored = (repo: string, server: string) => {
  const dir = path.join(repo, server, 'wal', '0000000100000000');
  return existsSync(dir) ? readdirSync(dir) : [];
};

/**
 * archive-push reads the PostgreSQL major from the WAL page magic: the first
 * segment records it with the system identifier, a segment of another major
 * is refused, and so is a magic no known major writes (as pgBackRest does).
 */
describe('WAL page magic and the major version', () => {
  let dir: string;
  let configFile: string;
  const repo = () => path.join(dir, 'repo');

  beforeAll(async () => {
    dir = await scratchDir();
    configFile = path.join(dir, 'pgharbor.yaml');
    const servers = Object.keys(MAGIC).flatMap((major) => [`  pg${major}:`, '    conninfo: host=/nonexistent', `    repositories: [{ type: posix, path: ${repo()} }]`]);
    await writeFile(configFile, ['servers:', ...servers, ''].join('\n'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const push = (server: string, file: string) => pgharbor(['--config', configFile, 'archive-push', server, file]);

  it('records the major of the first segment of each version 13 to 18', async () => {
    for (const [major, magic] of Object.entries(MAGIC)) {
      const result = await push(`pg${major}`, await segment(dir, '000000010000000000000001', magic));
      expect(result.exitCode, result.stderr).toBe(0);
      const identity = JSON.parse(await readFile(path.join(repo(), `pg${major}`, 'identity.json'), 'utf8'));
      expect(identity.pgVersion).toBe(Number(major) * 10000);
    }
  });

  it('refuses a segment of another major, storing nothing', async () => {
    const result = await push('pg17', await segment(dir, '000000010000000000000002', MAGIC[15]));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('000000010000000000000002 is WAL of PostgreSQL 15 (page magic 0xD110)');
    expect(result.stderr).toContain('of PostgreSQL 17');
    expect(result.stderr).toMatch(/HINT: after a major upgrade, archive under a new server name/);
    expect(stored(repo(), 'pg17').some((f) => f.startsWith('000000010000000000000002'))).toBe(false);
  });

  it('refuses a page magic no known major writes, storing nothing', async () => {
    const result = await push('pg18', await segment(dir, '000000010000000000000003', 0xd11a));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('000000010000000000000003 has WAL page magic 0xD11A, which no PostgreSQL version pgharbor knows writes');
    expect(result.stderr).toMatch(/HINT: .*pgharbor supports PostgreSQL 13 to 18/);
    expect(stored(repo(), 'pg18').some((f) => f.startsWith('000000010000000000000003'))).toBe(false);
  });
});
