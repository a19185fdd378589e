/**
 * Logging with secret redaction. Every value registered with `addSecret`
 * (passwords, keys) and every `password=` in a conninfo string is replaced
 * by `<redacted>` before a line leaves the process, whatever the caller
 * passed in. Logs go to stderr; stdout is reserved for command output.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const secrets = new Set<string>();

/** Register a secret value so that it never appears in logs or error messages. */
export function addSecret(value: string | undefined): void {
  // Very short values would redact ordinary words; they are not real secrets anyway.
  if (value && value.length >= 4) secrets.add(value);
}

const conninfoPassword = /(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]+)/gi;
const urlPassword = /(\w+:\/\/[^:/@\s]+:)([^@\s]+)(@)/g;

export function redact(text: string): string {
  let out = text.replace(conninfoPassword, '$1<redacted>').replace(urlPassword, '$1<redacted>$3');
  for (const secret of secrets) out = out.split(secret).join('<redacted>');
  return out;
}

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to stderr. */
  write?: (line: string) => void;
  timestamps?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const min = levelRank[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: LogLevel, message: string) => {
    if (levelRank[level] < min) return;
    const stamp = options.timestamps ? new Date().toISOString() + ' ' : '';
    const tag = level === 'info' ? '' : level.toUpperCase() + ': ';
    write(redact(stamp + tag + message));
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
