import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireLock } from './lock.js';
import { LocalLockStore, acquireLocalLock, localLockHolder } from './local-lock-store.js';

/** The lock's rules on a real directory (LocalLockStore: create-only by hard link). */
describe('lock', () => {
  let dir: string;
  let store: LocalLockStore;
  const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid;
  const owner = (fields: Record<string, unknown>) => JSON.stringify({ token: 'a'.repeat(32), pid: deadPid(), hostname: os.hostname(), operation: 'backup', since: '2026-01-01T00:00:00Z', ...fields });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(process.env.PGHARBOR_SANDBOX_DIR ?? os.tmpdir(), 'pgharbor-lock-'));
    store = new LocalLockStore(dir);
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('refuses a second taker while the owner lives, naming it; release frees it', async () => {
    const first = await acquireLock(store, 'x.lock', 'backup', { subject: 'pga' });
    await expect(acquireLock(store, 'x.lock', 'expire', { subject: 'pga' })).rejects.toThrow(
      new RegExp(`^another backup of pga is running \\(pid ${process.pid} on ${os.hostname()}, since `),
    );
    expect(localLockHolder(dir, 'x')?.token).toBe(first.owner.token);
    expect(await first.release()).toBe(true);
    expect(await readdir(dir)).toEqual([]);
    expect(localLockHolder(dir, 'x')).toBeUndefined();
  });

  it('never lets a hostile token name another key: the breaker of a token that is not 32 hex is named by a hash', async () => {
    await writeFile(path.join(dir, 'x.lock'), owner({ token: '../../../etc/x' }));
    const lock = await acquireLock(store, 'x.lock', 'backup');
    expect(JSON.parse(await readFile(path.join(dir, 'x.lock'), 'utf8')).token).toBe(lock.owner.token);
    expect(await readdir(dir)).toEqual(['x.lock']); // the breaker (x.lock.break-<sha256 prefix>) is gone
  });

  it('reports a lock it cannot read as busy, with what to remove', async () => {
    await writeFile(path.join(dir, 'x.lock'), 'not json');
    await expect(acquireLock(store, 'x.lock', 'backup')).rejects.toMatchObject({
      message: 'another process of x.lock is running (an owner pgharbor cannot read)',
      hint: `wait for it to finish; if that process is gone (pgharbor cannot check another host), remove x.lock from ${dir}`,
    });
  });

  it('never takes over a lock of another host', async () => {
    await writeFile(path.join(dir, 'x.lock'), owner({ hostname: 'elsewhere.example' }));
    await expect(acquireLock(store, 'x.lock', 'backup', { subject: 'pga' })).rejects.toThrow(/^another backup of pga is running \(pid \d+ on elsewhere\.example/);
  });

  it('breaks a breaker left by a taker killed half-way, one level down', async () => {
    await writeFile(path.join(dir, 'x.lock'), owner({ token: 'a'.repeat(32) }));
    await writeFile(path.join(dir, `x.lock.break-${'a'.repeat(32)}`), owner({ token: 'b'.repeat(32), operation: 'takeover of x.lock' }));
    const lock = await acquireLock(store, 'x.lock', 'backup');
    expect(await readdir(dir)).toEqual(['x.lock']);
    expect(await lock.release()).toBe(true);
  });

  it('local single-instance locks: a recycled pid is no owner when ownerGone says so', async () => {
    await writeFile(path.join(dir, 'receive-wal.lock'), owner({ pid: process.pid, token: 'd'.repeat(32) })); // alive, but not a receive-wal
    const lock = await acquireLocalLock(dir, 'receive-wal', 'receive-wal', { ownerGone: (o) => o.token === 'd'.repeat(32) });
    expect(localLockHolder(dir, 'receive-wal')?.token).toBe(lock.owner.token);
  });
});
