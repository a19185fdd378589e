import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkspace, pgbenchChecksums, type Workspace } from './harness.js';

/**
 * Chains as an operator meets them: backup_type incr in the config (the
 * first backup becomes a full, saying why), restores of every link, and
 * retention, delete and expire that never leave a backup without its parent.
 */
describe('backup chains: configured type, delete and expire', () => {
  let ws: Workspace;
  const ids: { full1: string; incr1: string; incr2: string; full2?: string; incr3?: string } = { full1: '', incr1: '', incr2: '' };
  const atBackup = new Map<string, Record<string, string>>();

  const backup = async (args: string[] = []) => {
    const result = await ws.run(['--json', 'backup', 'pg', ...args]);
    expect(result.exitCode, result.stderr).toBe(0);
    const manifest = JSON.parse(result.stdout);
    atBackup.set(manifest.id, await pgbenchChecksums(ws.cluster));
    await new Promise((r) => setTimeout(r, 1100)); // backup ids have one-second resolution
    return { manifest, stderr: result.stderr };
  };
  const change = (n: number) => ws.cluster.query(`UPDATE pgbench_accounts SET abalance = abalance + ${n} WHERE aid % 50 = ${n}`);

  beforeAll(async () => {
    ws = await createWorkspace({ serverExtra: ['backup_type: incr', 'full_backup_every: 7 DAYS', 'retention: REDUNDANCY 1', 'retention_policy_mode: manual'] });
    await ws.cluster.pgbench(['-i', '-s', '2']);
  }, 120_000);
  afterAll(async () => ws?.cleanup());

  it('backup_type incr: the first backup is a full (no full to build on yet, said so), the next ones incrementals', async () => {
    const first = await backup();
    expect(first.manifest.type).toBe('full');
    expect(first.stderr).toContain('is a full backup: backup_type is incr, but there is no full backup to build on yet');
    ids.full1 = first.manifest.id;
    await change(1);
    const second = await backup();
    expect(second.manifest).toMatchObject({ type: 'incr', parent: ids.full1 });
    ids.incr1 = second.manifest.id;
    await change(2);
    const third = await backup();
    expect(third.manifest).toMatchObject({ type: 'incr', parent: ids.incr1 });
    ids.incr2 = third.manifest.id;
    // --type wins over the configured type.
    const full2 = (await backup(['--type', 'full'])).manifest;
    expect(full2.type).toBe('full');
    ids.full2 = full2.id;
    const refused = await ws.run(['backup', 'pg', '--type', 'weekly']);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('--type weekly: unknown backup type');
  }, 240_000);

  it('list-backups and show-backup show type, parent, stored size and the chain', async () => {
    const list = await ws.run(['list-backups', 'pg']);
    expect(list.stdout).toMatch(new RegExp(`pg ${ids.incr2} - INCR of ${ids.incr1} - .* - Size: .* \\(stored .*\\)`));
    const show = await ws.run(['show-backup', 'pg', ids.incr2]);
    expect(show.stdout).toMatch(/Backup Type\s*: incr \(parent /);
    expect(show.stdout).toContain(`Chain                  : ${ids.full1} -> ${ids.incr1} -> ${ids.incr2}`);
    const root = await ws.run(['show-backup', 'pg', ids.full1]);
    expect(root.stdout).toContain(`Needed by              : ${ids.incr1}, ${ids.incr2}`);
  }, 60_000);

  it('expire with REDUNDANCY 1 removes the older chain whole, newest first, and keeps the newest full with its incrementals', async () => {
    await change(3);
    const incr = await backup();
    expect(incr.manifest.type).toBe('incr');
    ids.incr3 = incr.manifest.id;
    const expired = await ws.run(['--json', 'expire', 'pg']);
    expect(expired.exitCode, expired.stderr).toBe(0);
    const subjects = JSON.parse(expired.stdout).items.filter((i: { kind: string }) => i.kind === 'backup').map((i: { subject: string }) => i.subject);
    expect(subjects).toEqual([ids.full1, ids.incr1, ids.incr2]);
    const list = await ws.run(['--json', 'list-backups', 'pg']);
    const left = JSON.parse(list.stdout).map((b: { id: string; type: string }) => `${b.type}`);
    expect(left).toEqual(['incr', 'full']); // newest first: incr3 on the second full

    // What is left restores: the incremental on top of the second full, data as at its backup.
    const target = await ws.restoreTarget();
    const restore = await ws.run(['restore', 'pg', ids.incr3, target]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    const restored = await ws.startRestored(target);
    expect(await pgbenchChecksums(restored)).toEqual(atBackup.get(ids.incr3));
    await restored.stop();
  }, 240_000);
  it('deleting a link others need is refused, naming them; --with-dependents deletes the chain from it, newest first', async () => {
    await change(4);
    const incr4 = (await backup()).manifest;
    expect(incr4).toMatchObject({ type: 'incr', parent: ids.incr3 });
    const refused = await ws.run(['delete', 'pg', ids.incr3!]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`backup ${ids.incr3} of pg is needed by ${incr4.id} (incr): they cannot be restored without it`);
    expect(refused.stderr).toContain(`pgharbor delete pg ${ids.incr3} --with-dependents`);
    const deleted = await ws.run(['--json', 'delete', 'pg', ids.incr3!, '--with-dependents']);
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toMatchObject({ deleted: ids.incr3, dependents: [incr4.id] });
    const list = await ws.run(['--json', 'list-backups', 'pg']);
    expect(JSON.parse(list.stdout).map((b: { id: string }) => b.id)).toEqual([ids.full2]);
  }, 60_000);

});
