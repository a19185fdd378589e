import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCluster, SANDBOX_PASSWORD, type SandboxCluster } from '@pgharbor/sandbox';
import { pgharbor, scratchDir, type CliResult } from './harness.js';
import { signatureValid, startReceiver, type Receiver } from './notify-receiver.js';

const chatExample = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/notifiers/chat-notifier.mjs');
const HOOK_KEY = 'hmac-key-for-the-e2e-webhook';

/**
 * Notifications and hook scripts around real backups of a sandbox
 * PostgreSQL: webhooks to a receiver on loopback, a command target, the
 * chat notifier of examples/ loaded by relative path, Barman's hook
 * scripts. The server's password comes from the environment, so the tests
 * can check that it never reaches an event or a script.
 */
describe('notifications and hook scripts around backups', () => {
  let dir: string;
  let cluster: SandboxCluster;
  let receiver: Receiver;
  let configFile: string;
  const run = (args: string[]): Promise<CliResult> => pgharbor(['--config', configFile, ...args]);
  const file = (name: string) => path.join(dir, name);
  const readLines = async (name: string) => (await readFile(file(name), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  /** Hook script runs, in order: each a map of its PGHARBOR_* variables. */
  const hookRuns = async () =>
    (await readFile(file('hooks.log'), 'utf8').catch(() => ''))
      .split('\0---\0')
      .filter((block) => block.trim())
      .map((block) => Object.fromEntries(block.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));

  beforeAll(async () => {
    [cluster, receiver, dir] = await Promise.all([createCluster(), startReceiver(), scratchDir('pgharbor-notify-')]);
    process.env.PGH_E2E_PASSWORD = SANDBOX_PASSWORD;
    process.env.PGH_E2E_HOOK_KEY = HOOK_KEY;
    await mkdir(file('scripts'));
    // Records every PGHARBOR_* variable it was given (NUL-separated: values may hold newlines).
    await writeFile(file('scripts/record.sh'), `#!/bin/sh\n{ env -0 | grep -z -e '^PGHARBOR_' -e '^PGH_E2E_'; printf 'ARGS=%s\\0---\\0' "$*"; } >> ${file('hooks.log')}\n`, { mode: 0o755 });
    // Exits with the first code listed in gate-codes (and drops it), else 0.
    await writeFile(file('scripts/gate.sh'), `#!/bin/sh\n${file('scripts/record.sh')} gate\ncode=$(head -n1 ${file('gate-codes')} 2>/dev/null)\nsed -i 1d ${file('gate-codes')} 2>/dev/null\nexit \${code:-0}\n`, { mode: 0o755 });
    // A command target: the event on stdin, one JSON line per event.
    await writeFile(file('scripts/notify.sh'), `#!/bin/sh\n[ -e ${file('notify-down')} ] && { echo "pager unreachable" >&2; exit 1; }\ncat >> ${file('command-events.jsonl')}\nprintf '%s' "$PGHARBOR_LABEL" > ${file('command-label.txt')}\n`, { mode: 0o755 });
    const chat = path.relative(dir, chatExample);
    configFile = file('pgharbor.config.yaml');
    await writeFile(
      configFile,
      `state_dir: ./state
plugins:
  - ${chat.startsWith('.') ? chat : `./${chat}`}
defaults:
  conninfo: "${cluster.tcpConninfo}"
  password: { from_env: PGH_E2E_PASSWORD }
  immediate_checkpoint: true
servers:
  pg:
    pre_backup_script: ./scripts/record.sh
    pre_backup_retry_script: ./scripts/gate.sh
    post_backup_retry_script: [./scripts/record.sh, post-retry]
    post_backup_script: ./scripts/record.sh
    pre_delete_script: ./scripts/record.sh
    post_delete_script: ./scripts/record.sh
    pre_recovery_script: ./scripts/record.sh
    post_recovery_script: ./scripts/record.sh
    retry_script_sleep: 0.2
    repositories:
      - { type: posix, path: ./repo }
  other:
    repositories:
      - { type: posix, path: ./repo-other }
notifications:
  - { type: webhook, name: hook, url: "${receiver.url}/pg", secret: { from_env: PGH_E2E_HOOK_KEY }, headers: { X-Team: dba }, timeout: 1, retries: 0 }
  - { type: webhook, name: failures-only, url: "${receiver.url}/failures", on: [backup.failed, archive.failed] }
  - { type: webhook, name: other-only, url: "${receiver.url}/other", servers: [other] }
  - { type: command, name: script, command: ./scripts/notify.sh, on: ["backup.*"], timeout: 5, retries: 0 }
  - { type: chat, name: chat, url: "${receiver.url}/chat", channel: "#dba", on: [backup.succeeded, backup.failed, restore.succeeded] }
`,
    );
  });
  afterAll(async () => {
    await Promise.all([cluster?.destroy(), receiver?.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  /** Every payload any target received, across the tests. */
  const received: string[] = [];
  beforeEach(async () => {
    received.push(...receiver.deliveries.map((d) => d.body), ...(await readLines('command-events.jsonl')));
    receiver.deliveries.length = 0;
    receiver.behave = () => ({});
    await rm(file('hooks.log'), { force: true });
    await rm(file('command-events.jsonl'), { force: true });
  });

  it('a backup sends backup.started and backup.succeeded to the targets that want them; hook scripts frame it', async () => {
    await writeFile(file('gate-codes'), '1\n'); // the retry script fails once, then lets the backup run
    const label = `it's "nightly" $(touch ${file('pwned')}) \`id\` \\n'; second part`; // one line: a backup_label takes no line break (the basebackup method refuses one)
    const backup = await run(['--json', 'backup', 'pg', '--label', label]);
    expect(backup.exitCode, backup.stderr).toBe(0);
    const id = JSON.parse(backup.stdout).id as string;

    const hook = receiver.at('/pg');
    expect(hook.map((d) => d.json.event)).toEqual(['backup.started', 'backup.succeeded']);
    expect(hook.every((d) => signatureValid(d, HOOK_KEY) && d.headers['x-team'] === 'dba')).toBe(true);
    expect(hook[1].json).toMatchObject({ server: 'pg', backupId: id, method: 'basebackup', severity: 'info', label, repository: file('repo'), host: expect.any(String) });
    expect(hook[1].json.size).toBeGreaterThan(1_000_000);
    expect(receiver.at('/failures')).toEqual([]);
    expect(receiver.at('/other')).toEqual([]);
    expect(receiver.at('/chat').map((d) => JSON.parse(d.body))).toEqual([{ text: expect.stringMatching(new RegExp(`^:white_check_mark: .*: backup ${id} of pg succeeded`)), channel: '#dba' }]);

    // The command target got each event on stdin; the hostile label arrived intact and ran nothing.
    expect((await readLines('command-events.jsonl')).map((l) => JSON.parse(l).event)).toEqual(['backup.started', 'backup.succeeded']);
    expect(await readFile(file('command-label.txt'), 'utf8')).toBe(label);
    await expect(readFile(file('pwned'))).rejects.toThrow(/ENOENT/);

    // Barman's order: pre, pre retry (failed once: retried), the backup, post retry, post.
    const runs = await hookRuns();
    expect(runs.map((r) => `${r.PGHARBOR_PHASE} ${r.PGHARBOR_HOOK}`)).toEqual([
      'pre backup_script',
      'pre backup_retry_script',
      'pre backup_retry_script',
      'post backup_retry_script',
      'post backup_script',
    ]);
    expect(runs[0]).toMatchObject({ PGHARBOR_SERVER: 'pg', PGHARBOR_BACKUP_ID: id, PGHARBOR_STATUS: 'STARTED', PGHARBOR_RETRY: '0', PGHARBOR_CONFIGURATION: configFile });
    expect(runs[4]).toMatchObject({ PGHARBOR_BACKUP_ID: id, PGHARBOR_STATUS: 'DONE', PGHARBOR_ERROR: '' });
    expect(runs[3]).toMatchObject({ PGHARBOR_RETRY: '1', ARGS: 'post-retry' });
    // Scripts do not inherit the variables the config names as secrets.
    expect(runs.some((r) => 'PGH_E2E_PASSWORD' in r || 'PGH_E2E_HOOK_KEY' in r)).toBe(false);
  });

  it('a pre_backup_retry_script exiting 63 (ABORT_STOP) stops the backup with a clear error; post scripts and targets hear of the failure', async () => {
    await writeFile(file('gate-codes'), '63\n');
    const before = JSON.parse((await run(['--json', 'list-backups', 'pg'])).stdout).length;
    const backup = await run(['backup', 'pg']);
    expect(backup.exitCode).toBe(1);
    expect(backup.stderr).toMatch(/^ERROR: backup of pg stopped by pre_backup_retry_script \.\/scripts\/gate\.sh: exited with 63 \(ABORT_STOP\)/m);
    expect(backup.stderr).toMatch(/^HINT: the script refused the backup/m);
    expect(JSON.parse((await run(['--json', 'list-backups', 'pg'])).stdout).length).toBe(before);

    const runs = await hookRuns();
    expect(runs.map((r) => `${r.PGHARBOR_PHASE} ${r.PGHARBOR_HOOK}`)).toEqual(['pre backup_script', 'pre backup_retry_script', 'post backup_retry_script', 'post backup_script']);
    expect(runs[3]).toMatchObject({ PGHARBOR_STATUS: 'FAILED', PGHARBOR_ERROR: expect.stringMatching(/stopped by pre_backup_retry_script/) });
    const [failed] = receiver.at('/failures');
    expect(failed.json).toMatchObject({ event: 'backup.failed', server: 'pg', severity: 'error', error: { message: expect.stringMatching(/ABORT_STOP/), hint: expect.stringMatching(/refused/) } });
  });

  it('a backup of a stopped cluster sends backup.failed with the error and its hint', async () => {
    await cluster.stop();
    try {
      const backup = await run(['backup', 'pg']);
      expect(backup.exitCode).toBe(1);
      const [failed] = receiver.at('/failures');
      expect(failed.json).toMatchObject({ event: 'backup.failed', server: 'pg', error: { message: expect.stringMatching(/cannot connect/), hint: expect.any(String) } });
      expect(failed.json.summary).toMatch(/^backup of pg FAILED: /);
      expect((await hookRuns()).at(-1)).toMatchObject({ PGHARBOR_PHASE: 'post', PGHARBOR_STATUS: 'FAILED', PGHARBOR_ERROR: expect.stringMatching(/cannot connect/) });
    } finally {
      await cluster.start();
    }
  });

  it('a slow receiver and a failing command do not change the backup\'s result; a detached flusher delivers later', async () => {
    let slow = 1; // the first request to /pg hangs past the target's 1 s timeout
    receiver.behave = (p) => (p === '/pg' && slow-- > 0 ? { delayMs: 5000 } : {});
    await writeFile(file('notify-down'), '');
    const started = Date.now();
    const backup = await run(['--json', 'backup', 'pg']);
    const seconds = (Date.now() - started) / 1000;
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(seconds).toBeLessThan(15);
    expect(backup.stderr).toMatch(/^WARN: notification backup.started to hook \(webhook\) failed after 1 attempt\(s\): timed out after 1\.0 s; kept for a later delivery$/m);
    expect(backup.stderr).toMatch(/^WARN: notification backup.succeeded to script \(command\) failed after 1 attempt\(s\): .*notify\.sh exited with 1: pager unreachable/m);
    // backup.succeeded went through at once, backup.started timed out. The flusher the CLI leaves behind
    // redelivers it as soon as it has started, which can happen before backup.succeeded (a backup of a few seconds).
    expect(receiver.at('/pg').map((d) => d.json.event)).toContain('backup.succeeded');

    // The undelivered events wait in the spool; the flusher started by the backup delivers them once the targets are back.
    await rm(file('notify-down'));
    await receiver.waitFor(() => receiver.at('/pg').length === 2);
    expect(receiver.at('/pg').map((d) => d.json.event).sort()).toEqual(['backup.started', 'backup.succeeded']); // in either order: see above
    await expect.poll(async () => (await readLines('command-events.jsonl')).length, { timeout: 30_000, interval: 200 }).toBe(2);
  });

  it('notify-test sends a sample to every target of the server and exits 1 when one fails', async () => {
    await writeFile(file('notify-down'), '');
    try {
      const all = await run(['notify-test', 'pg']);
      expect(all.exitCode).toBe(1);
      expect(all.stdout).toMatch(/^hook +\(webhook\) +backup\.failed +OK/m);
      expect(all.stdout).toMatch(/^failures-only +\(webhook\) +backup\.failed +OK/m);
      expect(all.stdout).toMatch(/^script +\(command\) +backup\.failed +FAILED .*pager unreachable/m);
      expect(all.stdout).toMatch(/^chat +\(chat\) +backup\.succeeded +OK/m);
      expect(all.stdout).not.toMatch(/other-only/);
      expect(receiver.at('/pg')[0].json).toMatchObject({ event: 'backup.failed', test: true, summary: expect.stringMatching(/^\[test\] /) });
      const archive = await run(['--json', 'notify-test', 'pg', '--event', 'archive.failed']);
      expect(archive.exitCode).toBe(0);
      expect(JSON.parse(archive.stdout).targets.map((t: { target: string }) => t.target)).toEqual(['hook', 'failures-only']);
      const other = await run(['--json', 'notify-test', 'other', '--event', 'restore.failed']);
      expect(JSON.parse(other.stdout).targets.map((t: { target: string }) => t.target)).toEqual(['hook', 'other-only']);
    } finally {
      await rm(file('notify-down'), { force: true });
    }
  });

  it('check validates every target and hook script, and sends check.failed when something is wrong', async () => {
    const ok = await run(['check', 'pg']);
    expect(ok.exitCode, ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/notification target hook \(webhook\): OK \(POST http:\/\/127\.0\.0\.1:\d+, signed\)/);
    expect(ok.stdout).toMatch(/notification target script \(command\): OK/);
    expect(ok.stdout).toMatch(/hook script pre_backup_retry_script: OK/);
    await chmod(file('scripts/notify.sh'), 0o644);
    try {
      const bad = await run(['check', 'pg']);
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout).toMatch(/notification target script \(command\): FAILED \(.*notify\.sh is not an executable file\)/);
      expect(receiver.at('/pg').map((d) => d.json)).toEqual([expect.objectContaining({ event: 'check.failed', checks: [expect.objectContaining({ name: 'notification target script (command)' })] })]);
    } finally {
      await chmod(file('scripts/notify.sh'), 0o755);
    }
  });

  it('restore and delete run their hook scripts and raise their events', async () => {
    const id = JSON.parse((await run(['--json', 'list-backups', 'pg'])).stdout).find((b: { status: string }) => b.status === 'DONE').id as string;
    const target = file('restored');
    await mkdir(target, { mode: 0o700 });
    const restore = await run(['restore', 'pg', id, target]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect(receiver.at('/chat').map((d) => JSON.parse(d.body).text)).toEqual([expect.stringMatching(new RegExp(`backup ${id} of pg restored into ${target}`))]);
    const deleted = await run(['delete', 'pg', id]);
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect((await hookRuns()).map((r) => `${r.PGHARBOR_PHASE} ${r.PGHARBOR_HOOK} ${r.PGHARBOR_STATUS} ${r.PGHARBOR_BACKUP_ID}`)).toEqual([
      `pre recovery_script STARTED ${id}`,
      `post recovery_script DONE ${id}`,
      `pre delete_script STARTED ${id}`,
      `post delete_script DONE ${id}`,
    ]);
    expect((await hookRuns())[1]).toMatchObject({ PGHARBOR_DESTINATION_DIRECTORY: target });
  });

  it('no secret reached any target: not the database password, not the HMAC key', () => {
    expect(received.length).toBeGreaterThan(20);
    for (const body of received) for (const secret of [SANDBOX_PASSWORD, HOOK_KEY]) expect(body).not.toContain(secret);
  });
});
