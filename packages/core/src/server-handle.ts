import { existsSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import type { Harbor } from './harbor.js';
import type { ServerConfig } from './config/config-types.js';
import { resolveSecret } from './config/secrets.js';
import { conninfoToConnectPlan } from './postgres/pg-connect-plan.js';
import { toolConnection, type ToolConnection } from './postgres/tool-connection.js';
import { connectPostgres } from './postgres/pg-connect.js';
import { Repository } from './repository/repository.js';
import { ConfigError, HarborError } from './errors.js';
import { pgMajor } from './repository/server-identity.js';
import { REPOSITORY_CODEC_KEYS, resolveCodecSettings } from './codec/codec-settings.js';
import { RepositoryCodec } from './codec/repository-codec.js';

/**
 * One configured server: its settings, how to reach it, and its
 * repositories (opened lazily, closed with `close`).
 */
export class ServerHandle {
  private openRepositories?: Promise<Repository[]>;

  constructor(
    readonly harbor: Harbor,
    readonly name: string,
    readonly config: ServerConfig,
    readonly configDir: string,
  ) {}

  /** The password for SQL connections, when the config names one (else libpq's .pgpass / PGPASSWORD apply). */
  password(): string | undefined {
    return this.config.password ? resolveSecret(this.config.password, `servers.${this.name}.password`, this.configDir) : undefined;
  }

  streamingPassword(): string | undefined {
    const ref = this.config.streaming_password ?? this.config.password;
    return ref ? resolveSecret(ref, `servers.${this.name}.streaming_password`, this.configDir) : undefined;
  }

  get streamingConninfo(): string {
    return this.config.streaming_conninfo ?? this.config.conninfo;
  }

  connect(): Promise<pg.Client> {
    return connectPostgres(this.named('conninfo', () => conninfoToConnectPlan(this.config.conninfo, this.password())), `server ${this.name}`);
  }

  /** A physical replication connection over streaming_conninfo, as pg_basebackup opens it. */
  connectStreaming(extra: { application_name?: string } = {}): Promise<pg.Client> {
    const plan = this.named(this.streamingKey, () => conninfoToConnectPlan(this.streamingConninfo, this.streamingPassword()));
    return connectPostgres(plan, `server ${this.name} (streaming)`, { ...extra, replication: 'true' } as pg.ClientConfig);
  }

  private get streamingKey(): string {
    return this.config.streaming_conninfo ? 'streaming_conninfo' : 'conninfo';
  }

  /** A conninfo problem (a certificate file, sslmode) names the setting it comes from. */
  private named<T>(key: string, build: () => T): T {
    try {
      return build();
    } catch (error) {
      if (error instanceof ConfigError) throw new ConfigError(`servers.${this.name}.${key}: ${error.message.replace(/^conninfo: /, '')}`, error.hint);
      throw error;
    }
  }

  /**
   * --dbname and environment for the PostgreSQL tools (pg_basebackup,
   * pg_receivewal) over streaming_conninfo: the password, inline or
   * configured, travels in the child's environment, never on a command line.
   */
  toolConnection(extra: Record<string, string> = {}): ToolConnection {
    return this.named(this.streamingKey, () => toolConnection(this.streamingConninfo, this.streamingPassword(), extra));
  }

  /** Path of a PostgreSQL client program: pg_bin_dir, else the Debian directory of the server's major version, else PATH. */
  pgTool(tool: string, serverVersionNum?: number): string {
    if (this.config.pg_bin_dir) return path.join(this.config.pg_bin_dir, tool);
    if (serverVersionNum) {
      const candidate = `/usr/lib/postgresql/${pgMajor(serverVersionNum)}/bin/${tool}`;
      if (existsSync(candidate)) return candidate;
    }
    return tool;
  }

  repositories(): Promise<Repository[]> {
    this.openRepositories ??= Promise.all(
      this.config.repositories.map(async (repo, index) => {
        const { type, name, retention: _retention, ...options } = repo;
        for (const key of REPOSITORY_CODEC_KEYS) delete options[key];
        const where = `servers.${this.name}.repositories[${index}]`;
        const settings = resolveCodecSettings(this.config, repo, where);
        const storage = await this.harbor.storage.get(type).create(options, { logger: this.harbor.logger, configDir: this.configDir });
        const repository = new Repository(storage, this.name, index + 1, name ?? `repo${index + 1}`, new RepositoryCodec(settings, storage, this.name, this.configDir, where));
        const warned = new Set<string>();
        repository.onInvalidManifest = (error) => {
          if (!warned.has(error.backupId)) this.harbor.logger.warn(`${error.message}; skipped${error.hint ? `\nHINT: ${error.hint}` : ''}`);
          warned.add(error.backupId);
        };
        return repository;
      }),
    );
    return this.openRepositories;
  }

  /** Repository number `index` (1-based), or the first. */
  async repository(index?: number): Promise<Repository> {
    const all = await this.repositories();
    const chosen = all[(index ?? 1) - 1];
    if (!chosen) {
      throw new HarborError(`server ${this.name} has no repository ${index} (it has ${all.length})`, {
        hint: `use --repo 1..${all.length}`,
        exitCode: 2,
      });
    }
    return chosen;
  }

  async close(): Promise<void> {
    if (!this.openRepositories) return;
    const repos = await this.openRepositories.catch(() => []);
    await Promise.all(repos.map((repo) => repo.storage.close()));
  }
}
