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

/** Our own plugins, loaded by package name exactly like a user's. */
export const BUILTIN_PLUGINS: readonly string[] = ['@pgharbor/storage-posix', '@pgharbor/method-basebackup'];

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
  logger: Logger;
  private loaded?: LoadedConfig;
  private readonly servers = new Map<string, ServerHandle>();

  constructor(options: { logger?: Logger } = {}) {
    this.logger = options.logger ?? createLogger();
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
  static async load(options: { configFile?: string; cwd?: string; logger?: Logger; builtins?: readonly string[] } = {}): Promise<Harbor> {
    const harbor = new Harbor({ logger: options.logger });
    const { raw, filepath } = await loadRawConfig(options.configFile, options.cwd);
    const dir = filepath.replace(/\/[^/]*$/, '') || '/';
    const builtins = options.builtins ?? BUILTIN_PLUGINS;
    for (const name of builtins) await harbor.use(await loadPlugin(name, dir));
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
    await Promise.all([...this.servers.values()].map((server) => server.close()));
  }
}
