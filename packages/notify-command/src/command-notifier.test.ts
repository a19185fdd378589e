import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvent, deliver, silentLogger, type NotifierContext } from '@pgharbor/core';
import { createCommandNotifier } from './command-notifier.js';

let dir: string;
const context = (): NotifierContext => ({
  logger: silentLogger,
  configDir: dir,
  secret: () => {
    throw new Error('unused');
  },
  childEnv: () => ({ PATH: process.env.PATH }),
});

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pgharbor-command-'));
  // Records what it was given: stdin, its arguments and its PGHARBOR_* variables.
  writeFileSync(
    path.join(dir, 'record.sh'),
    '#!/bin/sh\ncat > "$(dirname "$0")/stdin.json"\nprintf "%s\\n" "$@" > "$(dirname "$0")/args.txt"\nenv | grep "^PGHARBOR_" | sort > "$(dirname "$0")/env.txt"\nprintf "%s" "$PGHARBOR_LABEL" > "$(dirname "$0")/label.txt"\n',
    { mode: 0o755 },
  );
  writeFileSync(path.join(dir, 'fail.sh'), '#!/bin/sh\necho "pager is down" >&2\nexit 3\n', { mode: 0o755 });
  writeFileSync(path.join(dir, 'hang.sh'), '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('command notifier', () => {
  it('gets the event as JSON on stdin and in PGHARBOR_* variables; a hostile label reaches it intact and runs nothing', async () => {
    const marker = path.join(dir, 'pwned');
    const label = `it's "quoted" $(touch ${marker}) \`touch ${marker}\`; rm -rf /nope\nsecond line`;
    const event = createEvent('backup.succeeded', { server: 'pga', backupId: '20261125T100000', label, size: 1024 });
    // A relative path is relative to the config file's directory.
    const notifier = createCommandNotifier({ command: ['./record.sh', '--team', 'dba $(whoami)'] }, context());
    await notifier.send(event, AbortSignal.timeout(5000));
    expect(JSON.parse(readFileSync(path.join(dir, 'stdin.json'), 'utf8'))).toEqual(event);
    expect(readFileSync(path.join(dir, 'label.txt'), 'utf8')).toBe(label);
    expect(readFileSync(path.join(dir, 'args.txt'), 'utf8')).toBe('--team\ndba $(whoami)\n');
    const env = readFileSync(path.join(dir, 'env.txt'), 'utf8');
    expect(env).toContain('PGHARBOR_EVENT=backup.succeeded\n');
    expect(env).toContain('PGHARBOR_SERVER=pga\n');
    expect(env).toContain('PGHARBOR_BACKUP_ID=20261125T100000\n');
    expect(env).toContain(`PGHARBOR_EVENT_ID=${event.id}\n`);
    expect(existsSync(marker)).toBe(false);
  });

  it('a non-zero exit is a failure that carries the command\'s own words', async () => {
    const outcome = await deliver(createCommandNotifier({ command: path.join(dir, 'fail.sh') }, context()), createEvent('check.failed', { server: 'pga', checks: [] }), {
      timeoutMs: 5000,
      retries: 0,
    });
    expect(outcome).toMatchObject({ ok: false, error: `${path.join(dir, 'fail.sh')} exited with 3: pager is down` });
  });

  it('a command that hangs is killed at the timeout', async () => {
    const started = Date.now();
    const outcome = await deliver(createCommandNotifier({ command: path.join(dir, 'hang.sh') }, context()), createEvent('check.failed', { server: 'pga', checks: [] }), {
      timeoutMs: 300,
      retries: 0,
    });
    expect(outcome.ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('check says when the command is missing, and how to give arguments', async () => {
    const notifier = createCommandNotifier({ command: '/usr/local/bin/page-oncall --urgent' }, context());
    expect(await notifier.check!(AbortSignal.timeout(1000))).toMatchObject({ ok: false, detail: expect.stringMatching(/is not an executable file; arguments go in a list/) });
  });
});
