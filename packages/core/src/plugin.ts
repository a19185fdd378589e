import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Harbor } from './harbor.js';
import { ConfigError, errorMessage } from './errors.js';

/**
 * The plugin contract: an object with a name and `apply(harbor)`, in which
 * it taps hooks and registers storage drivers, backup methods or notifiers.
 * A module may default-export such an object or a factory returning one
 * (called with the options given in config, if any).
 */
export interface HarborPlugin {
  name: string;
  apply(harbor: Harbor): void | Promise<void>;
}

export type HarborPluginFactory = (options?: Record<string, unknown>) => HarborPlugin;

/** A plugin entry in config: "specifier" or { module: "specifier", options: {...} }. */
export type PluginSpec = string | { module: string; options?: Record<string, unknown> };

/**
 * Load a plugin module by package name or by path relative to `baseDir`
 * (the directory of the config file), exactly the same way for our own
 * plugins and a user's.
 */
export async function loadPlugin(spec: PluginSpec, baseDir: string): Promise<HarborPlugin> {
  const specifier = typeof spec === 'string' ? spec : spec.module;
  const options = typeof spec === 'string' ? undefined : spec.options;
  const url = resolvePluginUrl(specifier, baseDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`cannot load plugin "${specifier}": ${errorMessage(error)}`, `check the path (relative to ${baseDir}) or install the package`);
  }
  const exported = (mod.default ?? mod.plugin ?? mod) as unknown;
  const plugin = typeof exported === 'function' ? (exported as HarborPluginFactory)(options) : exported;
  if (!isPlugin(plugin)) {
    throw new ConfigError(
      `plugin "${specifier}" does not export a plugin`,
      'default-export { name, apply(harbor) } or a function returning one',
    );
  }
  return plugin;
}

function resolvePluginUrl(specifier: string, baseDir: string): string {
  if (specifier.startsWith('.') || path.isAbsolute(specifier)) {
    return pathToFileURL(path.resolve(baseDir, specifier)).href;
  }
  // A package name: resolve from the config file's directory first (a user's
  // node_modules), then from pgharbor's own (our built-in plugins).
  for (const from of [baseDir, path.dirname(new URL(import.meta.url).pathname)]) {
    try {
      return pathToFileURL(createRequire(path.join(from, 'noop.js')).resolve(specifier)).href;
    } catch {
      // try the next place
    }
  }
  return specifier;
}

function isPlugin(value: unknown): value is HarborPlugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as HarborPlugin).name === 'string' &&
    typeof (value as HarborPlugin).apply === 'function'
  );
}
