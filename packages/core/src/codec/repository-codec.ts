import { HarborError } from '../errors.js';
import type { SecretRef } from '../config/config-types.js';
import { resolveSecret } from '../config/secrets.js';
import type { StorageDriver } from '../storage/storage-driver.js';
import { COMPRESSION_SUFFIX, ENCRYPTION_SUFFIX, type CodecSettings, type CompressionAlgorithm } from './codec-settings.js';
import { loadCompressor, type BlockCompressor } from './compressors.js';
import { keyFileKey, openDataKey, type DataKey, type KeySecret } from './keyring.js';
import { decodeStream, Encoder } from './stream-codec.js';
import { countDecoded, type ExpectedSize } from './decode-bounds.js';
import type { ObjectSeal } from './cipher.js';

/** Where a stored object belongs (objectPlace()), and whether format 1 objects (unbound) are accepted there. */
export interface StoredPlace {
  place: Buffer;
  legacy: boolean;
  onVersion?: (version: number) => void;
}

export interface StoredEncoding {
  compression?: string;
  encryption?: string;
}

/**
 * A repository's way of storing bytes: the configured compression and
 * encryption for what is written now, and the keys to read what was
 * written under any earlier setting (each file records its own).
 */
export class RepositoryCodec {
  private dataKey?: Promise<DataKey>;
  private writeCheck?: Promise<DataKey | undefined>;
  private plainCheck?: Promise<void>;

  constructor(
    readonly settings: CodecSettings,
    private readonly storage: StorageDriver,
    private readonly server: string,
    private readonly configDir: string,
    /** Where the settings are in the config, for messages ("servers.pga.repositories[0]"). */
    private readonly where: string,
  ) {}

  static identity(storage: StorageDriver, server: string): RepositoryCodec {
    return new RepositoryCodec({ compression: 'none' }, storage, server, '.', 'repository');
  }

  get compression(): CompressionAlgorithm {
    return this.settings.compression;
  }

  get encryption(): 'none' | 'aes-256-gcm' {
    return this.settings.encryption ? 'aes-256-gcm' : 'none';
  }

  /**
   * The config encrypts this repository: then everything read from it
   * must be authenticated with its key (manifests sealed, files and WAL
   * encrypted and bound to their place), and anything stored in the clear
   * is refused.
   */
  get isEncrypted(): boolean {
    return Boolean(this.settings.encryption);
  }

  /** Stores bytes exactly as given. */
  get isIdentity(): boolean {
    return this.settings.compression === 'none' && !this.settings.encryption;
  }

  /** Suffix of a WAL object written with the current settings: ".zst", ".lz4.enc"... */
  get walSuffix(): string {
    return COMPRESSION_SUFFIX[this.compression] + (this.settings.encryption ? ENCRYPTION_SUFFIX : '');
  }

  /**
   * Before writing: the data key when encrypting (made on first use). A
   * repository that holds an encryption key for the server refuses
   * unencrypted writes, so a host with a config that forgot the
   * passphrase cannot quietly store plaintext next to encrypted backups.
   */
  prepareWrite(): Promise<DataKey | undefined> {
    this.writeCheck ??= (async () => {
      if (this.settings.encryption) {
        if (!(await this.storage.stat(keyFileKey(this.server)))) await this.refuseEncryptingPlainData();
        return this.key(true);
      }
      if (await this.storage.stat(keyFileKey(this.server))) {
        throw new HarborError(`${this.storage.location} holds encrypted data of server ${this.server}, but ${this.where} has no encryption settings`, {
          hint: `add encryption: { passphrase: ... } (or key) to ${this.where}; pgharbor does not mix plaintext into an encrypted repository`,
        });
      }
      return undefined;
    })();
    this.writeCheck.catch(() => (this.writeCheck = undefined));
    return this.writeCheck;
  }

  /**
   * Before the first encrypted write makes encryption.json: a repository
   * that already holds backups or WAL of the server without one holds them
   * unencrypted, and an encrypted repository serves nothing unencrypted
   * (those backups would all be refused). Checked once, when the key is made.
   */
  private async refuseEncryptingPlainData(): Promise<void> {
    for (const prefix of [`${this.server}/backups/`, `${this.server}/wal/`]) {
      for await (const object of this.storage.list(prefix)) {
        if (!object) continue;
        throw new HarborError(`${this.where} has encryption settings, but ${this.storage.location} already holds unencrypted backups or WAL of server ${this.server} (${object.key}) and no encryption key (${keyFileKey(this.server)})`, {
          hint: `give the encrypted repository a new path (or prefix), or remove the encryption settings from ${this.where}: an encrypted repository serves nothing stored unencrypted. If that data was encrypted, its ${keyFileKey(this.server)} was removed: put back your copy; a new key would not open it`,
          exitCode: 2,
        });
      }
    }
  }

  /**
   * Before reading a repository the config does not encrypt: one that holds
   * an encryption key for the server is an encrypted repository, and reading
   * it without the key would take whatever plaintext someone put there.
   */
  assertPlainRepository(): Promise<void> {
    if (this.settings.encryption) return Promise.resolve();
    this.plainCheck ??= (async () => {
      if (await this.storage.stat(keyFileKey(this.server))) {
        throw new HarborError(`${this.storage.location} holds encrypted data of server ${this.server} (${keyFileKey(this.server)}: an encrypted repository), but ${this.where} has no encryption settings`, {
          hint: `add encryption: { passphrase: ... } (or key: ...) to ${this.where} with the secret it was written with; pgharbor reads nothing unauthenticated from an encrypted repository`,
          exitCode: 2,
        });
      }
    })();
    this.plainCheck.catch(() => (this.plainCheck = undefined));
    return this.plainCheck;
  }

  /** The data key and an object's place, to seal or open it. */
  async seal(at: StoredPlace | Buffer): Promise<ObjectSeal> {
    const { key } = await this.key();
    return Buffer.isBuffer(at) ? { key, place: at } : { key, place: at.place, legacy: at.legacy, onVersion: at.onVersion };
  }

  /** The data key, to read encrypted objects (or to write, create = true). */
  key(create = false): Promise<DataKey> {
    if (!this.settings.encryption) {
      return Promise.reject(
        new HarborError(`${this.storage.location} holds encrypted data of server ${this.server}, but ${this.where} has no encryption settings`, {
          hint: `add encryption: { passphrase: ... } (or key: ...) to ${this.where} with the secret it was written with`,
          exitCode: 2,
        }),
      );
    }
    if (!this.dataKey) {
      const secret = this.secret();
      this.dataKey = openDataKey(this.storage, this.server, secret, create);
      this.dataKey.catch(() => (this.dataKey = undefined));
    }
    return this.dataKey;
  }

  private secret(): KeySecret {
    const encryption = this.settings.encryption!;
    const kind = encryption.passphrase ? 'passphrase' : 'key';
    const ref = (encryption.passphrase ?? encryption.key) as SecretRef;
    const what = `${this.where}.encryption.${kind}`;
    const value = resolveSecret(ref, what, this.configDir);
    if (!value) throw new HarborError(`${what} is empty (${describeRef(ref)})`, { hint: 'an empty secret encrypts nothing; give a long random passphrase or a key', exitCode: 2 });
    return { kind, value, source: `${what} (${describeRef(ref)})` };
  }

  /**
   * An encoder for one object with the current settings, or undefined when
   * bytes are stored as they are. `place` (objectPlace()) is where the
   * object belongs; encrypted, it is bound there.
   */
  /** `long`: the object is part of a long stream (a backup's files), not a WAL file. */
  async encoder(emit: (bytes: Buffer) => Promise<void> | void, place: Buffer, long = false): Promise<Encoder | undefined> {
    if (this.isIdentity) {
      await this.prepareWrite();
      return undefined;
    }
    const key = await this.prepareWrite();
    const compressor: BlockCompressor | undefined = this.compression === 'none' ? undefined : await loadCompressor(this.compression);
    return new Encoder(compressor, this.settings.level, key && { key: key.key, place }, emit, long);
  }

  /**
   * The original bytes of a stored object, whatever settings it was written
   * with, and no more than `expected` (decode-bounds.ts). An encrypted
   * object must open at `at` (its place); in an encrypted repository an
   * object stored in the clear is refused.
   */
  async decoder(source: AsyncIterable<Buffer>, stored: StoredEncoding, at: StoredPlace, expected?: ExpectedSize): Promise<AsyncIterable<Buffer>> {
    const compression = stored.compression ?? 'none';
    const encryption = stored.encryption ?? 'none';
    if (encryption === 'none' && this.isEncrypted) throw new HarborError('stored unencrypted in an encrypted repository: refused', { hint: 'pgharbor never writes plaintext into an encrypted repository; someone else put it there' });
    if (compression === 'none' && encryption === 'none') return countDecoded(source, expected);
    if (encryption !== 'none' && encryption !== 'aes-256-gcm') throw new HarborError(`unknown encryption "${encryption}"`, { hint: 'a newer pgharbor wrote it; upgrade pgharbor' });
    return decodeStream(source, compression, encryption === 'none' ? undefined : await this.seal(at), expected);
  }
}

function describeRef(ref: SecretRef): string {
  if ('from_env' in ref) return `environment variable ${ref.from_env}`;
  if ('from_file' in ref) return `file ${ref.from_file}`;
  return `command ${(ref as { from_command: string[] }).from_command[0]}`;
}
