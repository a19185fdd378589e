import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { ScriptCommand } from '../config/hook-script-schema.js';

/**
 * Running the programs an operator configured (hook scripts, command
 * notifiers): always an argv, never a shell string, so a value with quotes,
 * `$()` or newlines is data and never code.
 */

/**
 * [file, args] of a configured command. A path with a "/" is relative to
 * the config file; a bare name is looked up in PATH.
 */
export function resolveCommand(command: ScriptCommand, configDir: string): [string, string[]] {
  const [file, ...args] = typeof command === 'string' ? [command] : command;
  return [file.includes('/') ? path.resolve(configDir, file) : file, args];
}

export interface ScriptRun {
  /** Exit code; undefined when the program could not be started or was killed. */
  exitCode?: number;
  /** stdout and stderr, interleaved. */
  output: string;
  /** Why it did not run or did not finish (not found, killed by a signal, timed out). */
  failure?: string;
}

/**
 * Run a program to completion. With a `signal`, it runs in its own process
 * group and the whole group is killed when the signal aborts: a script's
 * children (`sleep`, `curl`) would otherwise keep its output pipes open,
 * and so keep pgharbor waiting, long after the script itself was killed.
 */
export async function runProgram(
  command: [string, string[]],
  options: { env: Record<string, string | undefined>; input?: string; signal?: AbortSignal },
): Promise<ScriptRun> {
  const [file, args] = command;
  const { signal } = options;
  // Loaded on first use: archive-push starts once per WAL segment and rarely runs a program.
  const { execa } = await import('execa');
  const subprocess = execa(file, args, {
    env: options.env,
    extendEnv: false,
    reject: false,
    all: true,
    stripFinalNewline: true,
    detached: Boolean(signal),
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  });
  const killGroup = (name: NodeJS.Signals) => {
    try {
      if (subprocess.pid) process.kill(-subprocess.pid, name);
    } catch {
      // already gone
    }
  };
  const onAbort = () => {
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), 1000).unref();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const result = await subprocess;
  signal?.removeEventListener('abort', onAbort);
  const output = String(result.all ?? '');
  if (signal?.aborted) return { output, failure: 'timed out' };
  if (result.signal) return { output, failure: `killed by ${result.signal}` };
  if (result.exitCode === undefined) return { output, failure: result.shortMessage }; // could not start (not found, not executable)
  return { exitCode: result.exitCode, output };
}

/** Why `command` cannot be run (for `pgharbor check`), or undefined if it can. */
export async function whyNotRunnable(command: ScriptCommand, configDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const [file] = resolveCommand(command, configDir);
  const candidates = file.includes('/') ? [file] : (env.PATH ?? '').split(':').filter(Boolean).map((dir) => path.join(dir, file));
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      return undefined;
    } catch {
      // try the next
    }
  }
  const spaced = typeof command === 'string' && command.includes(' ');
  return `${file.includes('/') ? file : `"${file}" (in PATH)`} is not an executable file${spaced ? '; arguments go in a list: [path, arg, …]' : ''}`;
}

/** The last lines of a program's output, for a log line. */
export function outputTail(output: string, lines = 10): string {
  const all = output.trimEnd().split('\n');
  return (all.length > lines ? ['…', ...all.slice(-lines)] : all).join('\n');
}
