import { Harbor, createLogger, redact, redactDeep, type LogLevel } from '@pgharbor/core';

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
  json?: boolean;
  logLevel?: LogLevel;
}

/** Load the config and plugins as every command does. */
export function loadHarbor(options: GlobalOptions): Promise<Harbor> {
  return Harbor.load({ configFile: options.config, logger: createLogger({ level: options.logLevel ?? 'info' }) });
}

/** Load the config and plugins, run `fn`, and always release connections. */
export async function withHarbor<T>(options: GlobalOptions, fn: (harbor: Harbor) => Promise<T>): Promise<T> {
  const harbor = await loadHarbor(options);
  try {
    return await fn(harbor);
  } finally {
    await harbor.close();
  }
}

/** Command output: JSON for machines, text for people; always stdout, with secrets redacted as in logs (e.g. a restore's primary_conninfo). */
export function output(options: GlobalOptions, json: unknown, text: () => string): void {
  process.stdout.write(options.json ? JSON.stringify(redactDeep(JSON.parse(JSON.stringify(json ?? null))), null, 2) + '\n' : redact(text()) + '\n');
}
