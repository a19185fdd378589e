import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgharbor, scratchDir } from './harness.js';

/** A WAL segment with a PostgreSQL 15 long page header (system identifier 7000000000000000001); no cluster needed. */
async function segment(dir: string, name: string): Promise<string> {
  const content = Buffer.alloc(16 * 1024 * 1024);
  content.writeUInt16LE(0xd110, 0);
  content.writeUInt16LE(0x0002, 2);
  content.writeUInt32LE(1, 4);
  content.writeBigUInt64LE(7000000000000000001n, 24);
  content.writeUInt32LE(16 * 1024 * 1024, 32);
  content.writeUInt32LE(8192, 36);
  content.write(name, 100); // distinct content per segment
  const file = path.join(dir, name);
  await writeFile(file, content);
  return file;
}

function storedWal(repo: string): string[] {
  const dir = path.join(repo, 'pga', 'wal', '0000000100000000');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/**
 * archive-push and archive-get take a lean path (packages/cli/src/wal-command.ts)
 * that never compiles the config schema; it must still accept exactly the
 * configs every other command accepts (validated-config.ts).
 */
describe('the lean WAL path validates like every command', () => {
  let dir: string;
  let repo: string;
  let configFile: string;
  const valid = () => ['defaults:', '  compression: lz4', 'servers:', '  pga:', '    conninfo: host=/nonexistent', '    archive_server: false', `    repositories: [{ type: posix, path: ${repo} }]`];
  const push = (name: string) => pgharbor(['--config', configFile, 'archive-push', 'pga', path.join(dir, name)]);

  beforeAll(async () => {
    dir = await scratchDir();
    repo = path.join(dir, 'repo');
    configFile = path.join(dir, 'pgharbor.yaml');
    for (const n of [1, 2, 3, 4]) await segment(dir, `00000001000000000000000${n}`);
  });
  afterAll(async () => {
    // the memo of this config in the private scratch directory goes with it
    const memo = readdirSync(path.join(os.tmpdir(), `pgharbor-${process.getuid!()}`)).filter((f) => f.startsWith('validated-'));
    expect(memo.length).toBeGreaterThan(0);
  });

  it('refuses an invalid config at the first call: exit 2, the key named, nothing stored', async () => {
    await writeFile(configFile, [...valid(), '    compression_level: high'].join('\n') + '\n');
    const result = await push('000000010000000000000001');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/servers\.pga\.compression_level/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // one message, no stack
    expect(storedWal(repo)).toEqual([]);
  });

  it('applies the defaults the full CLI applies, on the first call and on the lean calls after it', async () => {
    await writeFile(configFile, valid().join('\n') + '\n');
    for (const name of ['000000010000000000000001', '000000010000000000000002']) expect((await push(name)).exitCode).toBe(0);
    const stored = storedWal(repo);
    expect(stored).toHaveLength(2);
    for (const name of stored) expect(name).toMatch(/\.lz4$/); // compression from `defaults`, both times
    const memo = readdirSync(path.join(os.tmpdir(), `pgharbor-${process.getuid!()}`)).filter((f) => f.startsWith('validated-'));
    const texts = await Promise.all(memo.map((f) => readFile(path.join(os.tmpdir(), `pgharbor-${process.getuid!()}`, f), 'utf8')));
    expect(texts.some((t) => t.includes(JSON.stringify(configFile)))).toBe(true);
  });

  it('refuses a config edited into an invalid one after it was valid (the lean path must not reuse the old validation)', async () => {
    await writeFile(configFile, [...valid(), '    archive_timout: 5'].join('\n') + '\n');
    const result = await push('000000010000000000000003');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/servers\.pga\.archive_timout is not a known setting/);
    expect(storedWal(repo).some((name) => name.startsWith('000000010000000000000003'))).toBe(false);

    const got = path.join(dir, 'fetched');
    const get = await pgharbor(['--config', configFile, 'archive-get', 'pga', '000000010000000000000001', got]);
    expect(get.exitCode).toBe(2);
    expect(existsSync(got)).toBe(false);
  });

  it('works again once the config is mended', async () => {
    await writeFile(configFile, valid().join('\n') + '\n');
    expect((await push('000000010000000000000004')).exitCode).toBe(0);
    const got = path.join(dir, 'fetched');
    expect((await pgharbor(['--config', configFile, 'archive-get', 'pga', '000000010000000000000004', got])).exitCode).toBe(0);
    expect((await readFile(got)).equals(await readFile(path.join(dir, '000000010000000000000004')))).toBe(true); // not toEqual: a 16 MiB deep compare
  });
});

describe('archive-push checks a segment against its own header', () => {
  it('refuses a segment shorter than the segment size its page header gives: exit 1, nothing stored', async () => {
    const dir = await scratchDir();
    const repo = path.join(dir, 'repo');
    const configFile = path.join(dir, 'pgharbor.yaml');
    await writeFile(configFile, ['servers:', '  pga:', '    conninfo: host=/nonexistent', '    archive_server: false', `    repositories: [{ type: posix, path: ${repo} }]`, ''].join('\n'));
    const whole = await segment(dir, '000000010000000000000005');
    const truncated = path.join(dir, '000000010000000000000006');
    await writeFile(truncated, (await readFile(whole)).subarray(0, 8 * 1024 * 1024));
    for (let call = 0; call < 2; call++) {
      // the first call validates the config (full path), the second is the lean one
      const result = await pgharbor(['--config', configFile, 'archive-push', 'pga', truncated]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/000000010000000000000006 is 8388608 bytes, but its page header gives a segment size of 16777216 bytes/);
    }
    expect(storedWal(repo)).toEqual([]);
    expect((await pgharbor(['--config', configFile, 'archive-push', 'pga', whole])).exitCode).toBe(0);
    expect(storedWal(repo)).toHaveLength(1);
  });
});
