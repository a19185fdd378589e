import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, type Workspace } from './harness.js';

const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/plugins/backup-journal.mjs');

/** The plugin in examples/ (and in the core README) works as documented, loaded from config by relative path. */
describe('examples/plugins/backup-journal.mjs', () => {
  let ws: Workspace;
  let journal: string;
  let pause: string;

  beforeAll(async () => {
    ws = await createWorkspace();
    journal = path.join(ws.dir, 'journal.jsonl');
    pause = path.join(ws.dir, 'pause');
    const config = await readFile(ws.configFile, 'utf8');
    const relative = path.relative(ws.dir, example);
    await writeFile(ws.configFile, `plugins:\n  - module: ${relative.startsWith('.') ? relative : './' + relative}\n    options: { journal: ${journal}, pauseFile: ${pause} }\n${config}`);
  });
  afterAll(async () => ws?.cleanup());

  it('journals a finished backup and reports itself in check', async () => {
    const backup = await ws.run(['--json', 'backup', 'pg']);
    expect(backup.exitCode).toBe(0);
    const id = JSON.parse(backup.stdout).id;
    const lines = (await readFile(journal, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([expect.objectContaining({ event: 'backup.succeeded', server: 'pg', backup: id })]);
    expect(lines[0].bytes).toBeGreaterThan(10_000_000);
    const check = await ws.run(['check', 'pg']);
    expect(check.stdout).toContain(`backup journal: OK (${journal})`);
  });

  it('vetoes a backup while the pause file exists, writing nothing', async () => {
    await writeFile(pause, '');
    const before = JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout).length;
    const backup = await ws.run(['backup', 'pg']);
    expect(backup.exitCode).toBe(1);
    expect(backup.stderr).toMatch(/ERROR: backup of pg vetoed by a plugin: backups are paused/);
    expect(JSON.parse((await ws.run(['--json', 'list-backups', 'pg'])).stdout).length).toBe(before);
  });
});
