import {
  outputTail,
  resolveCommand,
  runProgram,
  scriptCommandSchema,
  whyNotRunnable,
  type HarborEvent,
  type JsonSchemaObject,
  type Notifier,
  type NotifierContext,
  type ScriptCommand,
} from '@pgharbor/core';

export interface CommandOptions {
  /** An executable path, or [path, arg, …]; never a shell string. */
  command: ScriptCommand;
}

export const commandSchema: JsonSchemaObject = {
  type: 'object',
  properties: {
    command: scriptCommandSchema,
  },
  required: ['command'],
};

/**
 * The variables a command receives, besides the event as JSON on stdin.
 * Values go into the environment as they are: no shell ever parses them.
 */
export function eventEnv(event: HarborEvent): Record<string, string> {
  const scalar: Record<string, unknown> = {
    PGHARBOR_EVENT: event.event,
    PGHARBOR_EVENT_ID: event.id,
    PGHARBOR_TIME: event.time,
    PGHARBOR_HOST: event.host,
    PGHARBOR_SERVER: event.server,
    PGHARBOR_SEVERITY: event.severity,
    PGHARBOR_SUMMARY: event.summary,
    PGHARBOR_TEST: event.test ? '1' : undefined,
    PGHARBOR_BACKUP_ID: event.backupId,
    PGHARBOR_LABEL: event.label,
    PGHARBOR_REPOSITORY: event.repository,
    PGHARBOR_WAL_FILE: event.walFile,
    PGHARBOR_DESTINATION_DIRECTORY: event.destination,
    PGHARBOR_ERROR: event.error?.message,
    PGHARBOR_HINT: event.error?.hint,
  };
  return Object.fromEntries(Object.entries(scalar).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
}

/** Run the command with the event as JSON on stdin; exit 0 is success. */
export function createCommandNotifier(options: CommandOptions, context: NotifierContext): Notifier {
  const command = resolveCommand(options.command, context.configDir);
  return {
    async send(event, signal) {
      const run = await runProgram(command, { env: { ...context.childEnv(), ...eventEnv(event) }, input: JSON.stringify(event) + '\n', signal });
      if (run.exitCode === 0) return;
      throw new Error(`${command[0]} ${run.failure ?? `exited with ${run.exitCode}`}${run.output ? `: ${outputTail(run.output, 3)}` : ''}`);
    },
    async check() {
      const problem = await whyNotRunnable(options.command, context.configDir);
      return problem ? { ok: false, detail: problem, hint: 'install the command (chmod +x) or fix its path; relative paths are relative to the config file' } : { ok: true, detail: command[0] };
    },
  };
}
