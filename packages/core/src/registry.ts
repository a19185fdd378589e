import { ConfigError } from './errors.js';

/**
 * A map from a config `type` ("posix", "basebackup", "webhook") to the
 * implementation a plugin registered for it. Our own plugins and a user's
 * register through the same `register` call.
 */
export class Registry<T> {
  private readonly entries = new Map<string, T>();

  constructor(private readonly kind: string) {}

  register(type: string, implementation: T): void {
    if (this.entries.has(type)) {
      throw new ConfigError(`${this.kind} "${type}" is registered twice`, 'two plugins register the same type; remove one of them from "plugins"');
    }
    this.entries.set(type, implementation);
  }

  has(type: string): boolean {
    return this.entries.has(type);
  }

  get(type: string): T {
    const found = this.entries.get(type);
    if (!found) {
      const known = [...this.entries.keys()].join(', ') || 'none';
      throw new ConfigError(`unknown ${this.kind} "${type}" (known: ${known})`, `load the plugin that provides it with "plugins" in the config file`);
    }
    return found;
  }

  types(): string[] {
    return [...this.entries.keys()];
  }
}
