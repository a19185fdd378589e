import { HarborError } from '../errors.js';
import type { SecretRef } from '../config/config-types.js';
import { resolveSecret } from '../config/secrets.js';
import type { StorageDriver } from '../storage/storage-driver.js';
import { COMPRESSION_SUFFIX, ENCRYPTION_SUFFIX, type CodecSettings, type CompressionAlgorithm } from './codec-settings.js';
import { loadCompressor, type BlockCompressor } from './compressors.js';
import { keyFileKey, openDataKey, type DataKey, type KeySecret } from './keyring.js';
import { decodeStream, Encoder } from './stream-codec.js';
import { countDecoded, type ExpectedSize } from './decode-bounds.js';

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
      if (this.settings.encryption) return this.key(true);
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

  /** An encoder for one object with the current settings, or undefined when bytes are stored as they are. */
  async encoder(emit: (bytes: Buffer) => Promise<void> | void): Promise<Encoder | undefined> {
    if (this.isIdentity) {
      await this.prepareWrite();
      return undefined;
    }
    const key = await this.prepareWrite();
    const compressor: BlockCompressor | undefined = this.compression === 'none' ? undefined : await loadCompressor(this.compression);
    return new Encoder(compressor, this.settings.level, key?.key, emit);
  }

  /** The original bytes of a stored object, whatever settings it was written with, and no more than `expected` (decode-bounds.ts). */
  async decoder(source: AsyncIterable<Buffer>, stored: StoredEncoding, expected?: ExpectedSize): Promise<AsyncIterable<Buffer>> {
    const compression = stored.compression ?? 'none';
    const encryption = stored.encryption ?? 'none';
    if (compression === 'none' && encryption === 'none') return countDecoded(source, expected);
    if (encryption !== 'none' && encryption !== 'aes-256-gcm') throw new HarborError(`unknown encryption "${encryption}"`, { hint: 'a newer pgharbor wrote it; upgrade pgharbor' });
    const key = encryption === 'none' ? undefined : (await this.key()).key;
    return decodeStream(source, compression, key, expected);
  }
}

function describeRef(ref: SecretRef): string {
  if ('from_env' in ref) return `environment variable ${ref.from_env}`;
  if ('from_file' in ref) return `file ${ref.from_file}`;
  return `command ${(ref as { from_command: string[] }).from_command[0]}`;
}
