import type { PluginSpec } from '../plugin.js';
import type { NotificationTargetConfig } from '../notify/notification-target.js';

/** A secret is never written in the config itself: it comes from the environment, a file, or the output of a command (argv, no shell). */
export type SecretRef = { from_env: string } | { from_file: string } | { from_command: string[] };

export interface RepositoryConfig {
  /** Storage driver type: "posix", or whatever a plugin registers. */
  type: string;
  /** Optional name, shown in listings; defaults to "repo<N>". */
  name?: string;
  [option: string]: unknown;
}

export interface ServerConfig {
  description?: string;
  /** libpq connection string for normal SQL (keyword=value or URI). */
  conninfo: string;
  /** libpq connection string for replication; defaults to conninfo. */
  streaming_conninfo?: string;
  password?: SecretRef;
  streaming_password?: SecretRef;
  /** Backup method type; "basebackup" by default. */
  method: string;
  /** Directory holding pg_basebackup and friends; default: the one matching the server's major version. */
  pg_bin_dir?: string;
  repositories: RepositoryConfig[];
  /** Options contributed by backup methods (e.g. immediate_checkpoint). */
  [option: string]: unknown;
}

export interface PgharborConfig {
  plugins?: PluginSpec[];
  /** Values every server inherits unless it sets its own (Barman's [barman] section). */
  defaults?: Partial<ServerConfig>;
  servers: Record<string, ServerConfig>;
  log_level?: 'debug' | 'info' | 'warn' | 'error';
  /** Notification targets (docs/notifications.md). */
  notifications?: NotificationTargetConfig[];
  /** Spool and failure states of notifications; default ~/.pgharbor. */
  state_dir?: string;
}

/** A loaded, validated config and where it came from. */
export interface LoadedConfig {
  config: PgharborConfig;
  /** Absolute path of the config file. */
  filepath: string;
  /** Directory of the config file: relative paths are resolved against it. */
  dir: string;
}
