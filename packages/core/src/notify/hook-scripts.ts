import { setTimeout as sleep } from 'node:timers/promises';
import type { Harbor } from '../harbor.js';
import { HarborError } from '../errors.js';
import { PGHARBOR_VERSION } from '../version.js';
import { HOOK_OPERATIONS, hookScriptKey, type HookOperation, type HookPhase, type ScriptCommand } from '../config/hook-script-schema.js';
import { childEnv } from './child-env.js';
import { outputTail, resolveCommand, runProgram, whyNotRunnable, type ScriptRun } from './script-runner.js';

/**
 * Barman's hook scripts, with Barman's semantics. Around an operation
 * (backup, archive = one WAL file pushed, recovery, delete) they run in
 * this order: pre script, pre retry script, the operation, post retry
 * script, post script. A standard script runs once and its exit code is
 * only logged. A retry script runs until it exits 0 (SUCCESS), 62
 * (ABORT_CONTINUE) or 63 (ABORT_STOP), pausing between attempts; a pre
 * retry script's ABORT_STOP stops the operation with an error, a post
 * retry script's is logged (the operation is over).
 */
export const EXIT_SUCCESS = 0;
export const EXIT_ABORT_CONTINUE = 62;
export const EXIT_ABORT_STOP = 63;

export type RetryVerdict = 'success' | 'abort-continue' | 'abort-stop' | 'retry';

/** What one attempt of a retry script means. A script that cannot be started is a stop: retrying a missing file is pointless. */
export function retryVerdict(run: Pick<ScriptRun, 'exitCode' | 'failure'>): RetryVerdict {
  if (run.exitCode === EXIT_SUCCESS) return 'success';
  if (run.exitCode === EXIT_ABORT_CONTINUE) return 'abort-continue';
  if (run.exitCode === EXIT_ABORT_STOP) return 'abort-stop';
  if (run.exitCode === undefined && run.failure && !/killed|timed out/.test(run.failure)) return 'abort-stop';
  return 'retry';
}

/** Barman's schedule: a short pause after each failure, a 20× longer nap after every 5th. */
export function retryPauseMs(failures: number, sleepMs: number): number {
  return failures % 5 === 0 ? sleepMs * 20 : sleepMs;
}

/** What the scripts of one operation are told, beyond the common variables. */
export type ScriptEnv = Record<string, string | undefined>;

const TAP = 'pgharbor-hook-scripts';
/** Pre scripts run before plugins' taps, post scripts after them: the scripts frame the operation, as in Barman. */
const PRE = { name: TAP, stage: -100 };
const POST = { name: TAP, stage: 50 };

export function tapHookScripts(harbor: Harbor): void {
  const scripts = new HookScripts(harbor);
  const { backup, archive, recovery } = harbor.hooks;
  const ofBackup = (e: { backupId: string; repository: string; method?: string }) => ({
    PGHARBOR_BACKUP_ID: e.backupId,
    PGHARBOR_REPOSITORY: e.repository,
    PGHARBOR_METHOD: e.method,
  });

  backup.before.tapPromise(PRE, (e) => scripts.pre(e.server, 'backup', { ...ofBackup(e), PGHARBOR_STATUS: 'STARTED' }));
  backup.after.tapPromise(POST, (e) => scripts.post(e.server, 'backup', { ...ofBackup(e), PGHARBOR_STATUS: 'DONE' }));
  backup.failed.tapPromise(POST, (e, error) => scripts.post(e.server, 'backup', { ...ofBackup(e), PGHARBOR_STATUS: 'FAILED', ...errorEnv(error) }));

  archive.beforePush.tapPromise(PRE, (e) => scripts.pre(e.server, 'archive', { PGHARBOR_SEGMENT: e.walFile, PGHARBOR_STATUS: 'STARTED' }));
  archive.pushed.tapPromise(POST, (e) => scripts.post(e.server, 'archive', { PGHARBOR_SEGMENT: e.walFile, PGHARBOR_REPOSITORY: e.repository, PGHARBOR_STATUS: 'DONE' }));
  archive.pushFailed.tapPromise(POST, (e, error) =>
    scripts.post(e.server, 'archive', { PGHARBOR_SEGMENT: e.walFile, PGHARBOR_REPOSITORY: e.repository, PGHARBOR_STATUS: 'FAILED', ...errorEnv(error) }),
  );

  const ofRecovery = (e: { backupId: string; repository: string; destination: string }) => ({
    PGHARBOR_BACKUP_ID: e.backupId,
    PGHARBOR_REPOSITORY: e.repository,
    PGHARBOR_DESTINATION_DIRECTORY: e.destination,
  });
  recovery.before.tapPromise(PRE, (e) => scripts.pre(e.server, 'recovery', { ...ofRecovery(e), PGHARBOR_STATUS: 'STARTED' }));
  recovery.after.tapPromise(POST, (e) => scripts.post(e.server, 'recovery', { ...ofRecovery(e), PGHARBOR_STATUS: 'DONE' }));
  recovery.failed.tapPromise(POST, (e, error) => scripts.post(e.server, 'recovery', { ...ofRecovery(e), PGHARBOR_STATUS: 'FAILED', ...errorEnv(error) }));

  backup.beforeDelete.tapPromise(PRE, (e) => scripts.pre(e.server, 'delete', { ...ofBackup(e), PGHARBOR_STATUS: 'STARTED' }));
  backup.deleted.tapPromise(POST, (e) => scripts.post(e.server, 'delete', { ...ofBackup(e), PGHARBOR_STATUS: 'DONE' }));
  backup.deleteFailed.tapPromise(POST, (e, error) => scripts.post(e.server, 'delete', { ...ofBackup(e), PGHARBOR_STATUS: 'FAILED', ...errorEnv(error) }));

  harbor.hooks.check.tapPromise(TAP, async (context) => {
    const config = context.server.config as Record<string, unknown>;
    for (const operation of HOOK_OPERATIONS) {
      for (const phase of ['pre', 'post'] as const) {
        for (const retry of [false, true]) {
          const key = hookScriptKey(phase, operation, retry);
          const command = config[key] as ScriptCommand | undefined;
          if (!command) continue;
          const problem = await whyNotRunnable(command, context.server.configDir);
          context.report({ name: `hook script ${key}`, ok: !problem, detail: problem, hint: problem ? 'install the script (chmod +x) or fix its path; relative paths are relative to the config file' : undefined });
        }
      }
    }
  });
}

function errorEnv(error: Error): ScriptEnv {
  return { PGHARBOR_ERROR: error.message, PGHARBOR_HINT: (error as { hint?: string }).hint };
}

class HookScripts {
  constructor(private readonly harbor: Harbor) {}

  /** The pre scripts of an operation; throws to stop it when the retry script says ABORT_STOP. */
  async pre(server: string, operation: HookOperation, env: ScriptEnv): Promise<undefined> {
    await this.once(server, 'pre', operation, env);
    const verdict = await this.withRetries(server, 'pre', operation, env);
    if (verdict.stop) {
      const key = hookScriptKey('pre', operation, true);
      throw new HarborError(`${operation} of ${server} stopped by ${key} ${verdict.script}: ${verdict.stop}`, {
        hint: `the script refused the ${operation}; see its output above. Exit 0 lets the ${operation} run, 62 lets it run with a warning, 63 stops it, any other code retries`,
      });
    }
    return undefined;
  }

  /** The post scripts of an operation: never throw, the operation is over. */
  async post(server: string, operation: HookOperation, env: ScriptEnv): Promise<void> {
    const verdict = await this.withRetries(server, 'post', operation, env);
    if (verdict.stop) this.harbor.logger.warn(`${hookScriptKey('post', operation, true)} ${verdict.script}: ${verdict.stop}; ignored, the ${operation} is already over`);
    await this.once(server, 'post', operation, env);
  }

  private command(server: string, key: string): ScriptCommand | undefined {
    return this.harbor.config.config.servers[server]?.[key] as ScriptCommand | undefined;
  }

  private async once(server: string, phase: HookPhase, operation: HookOperation, env: ScriptEnv): Promise<void> {
    const key = hookScriptKey(phase, operation, false);
    const command = this.command(server, key);
    if (!command) return;
    const run = await this.run(server, command, phase, operation, false, env);
    if (run.exitCode !== 0) this.harbor.logger.warn(`${key} ${describe(command)} ${run.failure ?? `exited with ${run.exitCode}`}${run.output ? `:\n${outputTail(run.output)}` : ''}`);
  }

  /** Run the retry script until it says success or abort; `stop` says why the operation should stop (pre) or was abandoned (post). */
  private async withRetries(server: string, phase: HookPhase, operation: HookOperation, env: ScriptEnv): Promise<{ stop?: string; script?: string }> {
    const key = hookScriptKey(phase, operation, true);
    const command = this.command(server, key);
    if (!command) return {};
    const settings = this.harbor.config.config.servers[server];
    const sleepMs = Number(settings.retry_script_sleep ?? 3) * 1000;
    const maxAttempts = Number(settings.retry_script_max_attempts ?? 0);
    for (let attempt = 1; ; attempt++) {
      const run = await this.run(server, command, phase, operation, true, env);
      const verdict = retryVerdict(run);
      const said = run.failure ?? `exited with ${run.exitCode}`;
      const output = run.output ? `:\n${outputTail(run.output)}` : '';
      if (verdict === 'success') return {};
      if (verdict === 'abort-continue') {
        this.harbor.logger.warn(`${key} ${describe(command)} ${said} (ABORT_CONTINUE): the ${operation} goes on${output}`);
        return {};
      }
      if (verdict === 'abort-stop') return { stop: `${said}${run.exitCode === EXIT_ABORT_STOP ? ' (ABORT_STOP)' : ''}${output}`, script: describe(command) };
      if (maxAttempts > 0 && attempt >= maxAttempts) return { stop: `${said}, gave up after ${attempt} attempts (retry_script_max_attempts)${output}`, script: describe(command) };
      const pause = retryPauseMs(attempt, sleepMs);
      this.harbor.logger.warn(`${key} ${describe(command)} ${said} (attempt ${attempt}); retrying in ${pause / 1000} s${output}`);
      await sleep(pause);
    }
  }

  private run(server: string, command: ScriptCommand, phase: HookPhase, operation: HookOperation, retry: boolean, extra: ScriptEnv): Promise<ScriptRun> {
    const { config, dir, filepath } = this.harbor.config;
    const env = {
      ...childEnv(config),
      PGHARBOR_VERSION,
      PGHARBOR_SERVER: server,
      PGHARBOR_CONFIGURATION: filepath,
      PGHARBOR_HOOK: `${operation}_${retry ? 'retry_' : ''}script`,
      PGHARBOR_PHASE: phase,
      PGHARBOR_RETRY: retry ? '1' : '0',
      PGHARBOR_ERROR: '',
      ...Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)),
    };
    this.harbor.logger.debug(`running ${hookScriptKey(phase, operation, retry)} ${describe(command)}`);
    return runProgram(resolveCommand(command, dir), { env });
  }
}

function describe(command: ScriptCommand): string {
  return typeof command === 'string' ? command : JSON.stringify(command);
}
