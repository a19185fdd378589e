import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHooks, type HarborHooks } from './hooks.js';
import { Registry } from './registry.js';
import { createLogger, type Logger } from './log.js';
import { loadPlugin, type HarborPlugin, type PluginSpec } from './plugin.js';
import type { StorageFactory } from './storage/storage-factory.js';
import type { BackupMethod } from './backup/backup-method.js';
import type { NotifierFactory } from './notifier.js';
import type { LoadedConfig } from './config/config-types.js';
import { loadRawConfig } from './config/config-loader.js';
import { validateConfig } from './config/config-validate.js';
import { ServerHandle } from './server-handle.js';
import { ConfigError } from './errors.js';
import { NotificationDispatcher } from './notify/dispatcher.js';
import { tapHookScripts } from './notify/hook-scripts.js';
import { tapReceiveWalChecks } from './archive/receive-wal-checks.js';

/**
 * Our own plugins, loaded by package name exactly like a user's, but only
 * when the config uses what they provide: archive-push runs once per WAL
 * segment, and should not pay for loading an S3 SDK it does not need.
 */
export interface BuiltinPlugin {
  module: string;
  storage?: string[];
  methods?: string[];
  notifiers?: string[];
  /** Loaded whatever the config says. */
  always?: boolean;
}

export const BUILTIN_PLUGINS: readonly BuiltinPlugin[] = [
  { module: '@pgharbor/storage-posix', storage: ['posix'] },
  { module: '@pgharbor/storage-s3', storage: ['s3'] },
  { module: '@pgharbor/storage-sftp', storage: ['sftp'] },
  { module: '@pgharbor/method-basebackup', methods: ['basebackup'] },
  { module: '@pgharbor/method-rsync', methods: ['rsync'] },
  { module: '@pgharbor/notify-webhook', notifiers: ['webhook'] },
  { module: '@pgharbor/notify-command', notifiers: ['command'] },
  { module: '@pgharbor/notify-email', notifiers: ['email'] },
];

function writableDir(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Which built-ins a raw (not yet validated) config needs. */
function neededBuiltins(raw: unknown, builtins: readonly BuiltinPlugin[]): BuiltinPlugin[] {
  const config = (raw ?? {}) as { defaults?: Record<string, unknown>; servers?: Record<string, Record<string, unknown>> };
  const storage = new Set<string>();
  const methods = new Set<string>(['basebackup']);
  for (const server of Object.values(config.servers ?? {})) {
    const merged = { ...config.defaults, ...server };
    if (typeof merged.method === 'string') methods.add(merged.method);
    for (const repo of Array.isArray(merged.repositories) ? merged.repositories : []) {
      if (repo && typeof (repo as { type?: unknown }).type === 'string') storage.add((repo as { type: string }).type);
    }
  }
  const notifiers = new Set((Array.isArray((raw as { notifications?: unknown })?.notifications) ? (raw as { notifications: { type?: unknown }[] }).notifications : []).map((n) => n?.type));
  return builtins.filter((b) => b.always || b.storage?.some((t) => storage.has(t)) || b.methods?.some((m) => methods.has(m)) || b.notifiers?.some((n) => notifiers.has(n)));
}

/**
 * The core object: lifecycle hooks, registries keyed by config `type`, the
 * loaded config and the servers it describes.
 */
export class Harbor {
  readonly hooks: HarborHooks = createHooks();
  readonly storage = new Registry<StorageFactory>('storage type');
  readonly methods = new Registry<BackupMethod>('backup method');
  readonly notifiers = new Registry<NotifierFactory>('notifier type');
  readonly plugins: HarborPlugin[] = [];
  /** Raises notification events from the hooks and delivers them (docs/notifications.md). */
  readonly notifications: NotificationDispatcher;
  logger: Logger;
  private loaded?: LoadedConfig;
  private readonly servers = new Map<string, ServerHandle>();

  /** `builtinTaps: false` leaves out the hook scripts, notifications and receive-wal checks (see fromTrustedConfig). */
  constructor(options: { logger?: Logger; builtinTaps?: boolean } = {}) {
    this.logger = options.logger ?? createLogger();
    const builtinTaps = options.builtinTaps ?? true;
    if (builtinTaps) {
      tapHookScripts(this);
      tapReceiveWalChecks(this);
    }
    this.notifications = new NotificationDispatcher(this, builtinTaps);
  }

  async use(plugin: HarborPlugin): Promise<this> {
    await plugin.apply(this);
    this.plugins.push(plugin);
    return this;
  }

  /**
   * Find the config (or read `configFile`), load the built-in plugins and
   * the ones it lists, then validate it against every plugin's schema.
   */
  static async load(options: { configFile?: string; cwd?: string; logger?: Logger; builtins?: readonly BuiltinPlugin[] } = {}): Promise<Harbor> {
    const harbor = new Harbor({ logger: options.logger });
    const { raw, filepath } = await loadRawConfig(options.configFile, options.cwd);
    const dir = filepath.replace(/\/[^/]*$/, '') || '/';
    for (const builtin of neededBuiltins(raw, options.builtins ?? BUILTIN_PLUGINS)) await harbor.use(await loadPlugin(builtin.module, dir));
    const listed = (raw as { plugins?: unknown }).plugins;
    if (listed !== undefined && !Array.isArray(listed)) throw new ConfigError(`${filepath}: plugins must be a list`, 'plugins: ["./plugins/my-store.js"]');
    for (const spec of (listed ?? []) as PluginSpec[]) await harbor.use(await loadPlugin(spec, dir));
    harbor.loaded = validateConfig(raw, filepath, harbor);
    return harbor;
  }

  /** Use an already-validated config (tests, embedding). */
  static async fromConfig(loaded: LoadedConfig, plugins: HarborPlugin[], logger?: Logger): Promise<Harbor> {
    const harbor = new Harbor({ logger });
    for (const plugin of plugins) await harbor.use(plugin);
    harbor.loaded = validateConfig(loaded.config, loaded.filepath, harbor);
    return harbor;
  }

  /**
   * Use a config without running the validator: for the WAL hot path
   * (archive-push/get run once per segment), which checks the few keys it
   * reads itself and falls back to `load` for anything else.
   */
  static async fromTrustedConfig(loaded: LoadedConfig, plugins: HarborPlugin[], logger?: Logger): Promise<Harbor> {
    // Such a config has no hook scripts and no notifications (the hot path checks): their taps would
    // only cost compiling the hooks they make "used", once per segment.
    const harbor = new Harbor({ logger, builtinTaps: false });
    for (const plugin of plugins) await harbor.use(plugin);
    harbor.loaded = loaded;
    return harbor;
  }

  /** Where pgharbor keeps local state (spools, pid files): `state_dir`, else /var/lib/pgharbor when writable, else ~/.pgharbor. */
  stateDir(): string {
    const { config, dir } = this.config;
    if (config.state_dir) return path.resolve(dir, config.state_dir);
    return writableDir('/var/lib/pgharbor') ? '/var/lib/pgharbor' : path.join(os.homedir(), '.pgharbor');
  }

  get config(): LoadedConfig {
    if (!this.loaded) throw new Error('Harbor: no config loaded');
    return this.loaded;
  }

  serverNames(): string[] {
    return Object.keys(this.config.config.servers);
  }

  server(name: string): ServerHandle {
    const existing = this.servers.get(name);
    if (existing) return existing;
    const config = this.config.config.servers[name];
    if (!config) {
      throw new ConfigError(
        `unknown server "${name}" (configured: ${this.serverNames().join(', ')})`,
        `use one of the servers in ${this.config.filepath}, or add a section for it`,
      );
    }
    const handle = new ServerHandle(this, name, config, this.config.dir);
    this.servers.set(name, handle);
    return handle;
  }

  async close(): Promise<void> {
    await this.notifications.settle();
    await Promise.all([...this.servers.values()].map((server) => server.close()));
  }
}
