import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, scrypt as scryptCallback } from 'node:crypto';
import { promisify } from 'node:util';
import { ConfigError, HarborError } from '../errors.js';
import type { StorageDriver } from '../storage/storage-driver.js';
import { getJson, putJson } from '../storage/storage-io.js';
import { keyIdOf } from './cipher.js';

const scrypt = promisify(scryptCallback) as (password: string | Buffer, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/**
 * `<server>/encryption.json`, one per server in each encrypted repository:
 * the server's random 256-bit data key, wrapped (AES-256-GCM) with a key
 * encryption key that comes from the passphrase (scrypt) or the key file.
 * The data key never changes, so a new passphrase only rewraps it; a wrong
 * passphrase fails to unwrap it, before anything else happens.
 */
export interface KeyFile {
  format: 'pgharbor-encryption';
  version: 1;
  server: string;
  cipher: 'aes-256-gcm';
  /** How the key encryption key is made from the secret. */
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string } | { name: 'key-file' };
  /** The wrapped data key: nonce (12), ciphertext (32), tag (16), base64. */
  wrappedKey: { nonce: string; ciphertext: string; tag: string };
  /** keyIdOf(data key), hex: the key id in every encrypted object's header. */
  keyId: string;
  createdAt: string;
}

/** scrypt N = 2^15, r = 8, p = 1: 32 MiB and about 0.1 s here, per command that needs the key. */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1 };

export interface DataKey {
  key: Buffer;
  keyId: Buffer;
}

export function keyFileKey(server: string): string {
  return `${server}/encryption.json`;
}

export interface KeySecret {
  kind: 'passphrase' | 'key';
  value: string;
  /** For messages: where the secret comes from (never the secret). */
  source: string;
}

function wrapAad(server: string): Buffer {
  return Buffer.from(`pgharbor-encryption v1 ${server}`, 'utf8');
}

async function kekOf(secret: KeySecret, kdf: KeyFile['kdf'], where: string): Promise<Buffer> {
  if (kdf.name === 'scrypt') {
    if (secret.kind !== 'passphrase') throw new ConfigError(`${where} was set up with a passphrase, but the config gives a key file`, 'configure encryption.passphrase for this repository');
    const N = kdf.N;
    return scrypt(secret.value.normalize('NFC'), Buffer.from(kdf.salt, 'base64'), 32, { N, r: kdf.r, p: kdf.p, maxmem: 256 * N * kdf.r + 1024 * 1024 });
  }
  if (secret.kind !== 'key') throw new ConfigError(`${where} was set up with a key file, but the config gives a passphrase`, 'configure encryption.key for this repository');
  return Buffer.from(hkdfSync('sha256', parseKey(secret), Buffer.alloc(0), 'pgharbor key encryption key v1', 32));
}

/** A key file holds 32 bytes as 64 hex digits or as base64. */
export function parseKey(secret: KeySecret): Buffer {
  const text = secret.value.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : /^[A-Za-z0-9+/]{43}=?$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (!key || key.length !== 32) {
    throw new ConfigError(`the encryption key from ${secret.source} is not 32 bytes in hex (64 digits) or base64`, 'make one with: openssl rand -hex 32 > KEYFILE; chmod 600 KEYFILE');
  }
  return key;
}

/**
 * Open the server's data key in one repository: unwrap it from
 * encryption.json, or (create = true, on the first encrypted write)
 * make it and store encryption.json create-only.
 */
export async function openDataKey(storage: StorageDriver, server: string, secret: KeySecret, create: boolean): Promise<DataKey> {
  const where = `${storage.location} (server ${server})`;
  const key = keyFileKey(server);
  let file = (await storage.stat(key)) ? await getJson<KeyFile>(storage, key) : undefined;
  if (!file) {
    if (!create) {
      throw new HarborError(`${where} has no encryption key (${key} is missing)`, {
        hint: 'nothing encrypted was ever written for this server there; if there should be, the repository lost its encryption.json',
      });
    }
    file = await createKeyFile(storage, server, secret);
  }
  if (file.format !== 'pgharbor-encryption' || file.version !== 1 || file.cipher !== 'aes-256-gcm') {
    throw new HarborError(`${where}: ${key} has an unknown format (${file.format} ${file.version} ${file.cipher})`, { hint: 'a newer pgharbor wrote it; upgrade pgharbor' });
  }
  const kek = await kekOf(secret, file.kdf, where);
  const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(file.wrappedKey.nonce, 'base64'));
  decipher.setAAD(wrapAad(server));
  decipher.setAuthTag(Buffer.from(file.wrappedKey.tag, 'base64'));
  let dataKey: Buffer;
  try {
    dataKey = Buffer.concat([decipher.update(Buffer.from(file.wrappedKey.ciphertext, 'base64')), decipher.final()]);
  } catch {
    throw new HarborError(`wrong encryption ${secret.kind === 'passphrase' ? 'passphrase' : 'key'} for ${where}: it does not open ${key}`, {
      hint: `check ${secret.source}; nothing was read or written`,
    });
  }
  return { key: dataKey, keyId: keyIdOf(dataKey) };
}

async function createKeyFile(storage: StorageDriver, server: string, secret: KeySecret): Promise<KeyFile> {
  const dataKey = randomBytes(32);
  const kdf: KeyFile['kdf'] = secret.kind === 'passphrase' ? { name: 'scrypt', ...SCRYPT_PARAMS, salt: randomBytes(32).toString('base64') } : { name: 'key-file' };
  const kek = await kekOf(secret, kdf, storage.location);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(wrapAad(server));
  const ciphertext = Buffer.concat([cipher.update(dataKey), cipher.final()]);
  const file: KeyFile = {
    format: 'pgharbor-encryption',
    version: 1,
    server,
    cipher: 'aes-256-gcm',
    kdf,
    wrappedKey: { nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') },
    keyId: keyIdOf(dataKey).toString('hex'),
    createdAt: new Date().toISOString(),
  };
  try {
    await putJson(storage, keyFileKey(server), file, true);
    return file;
  } catch (error) {
    if ((error as Error).name !== 'StorageConflictError') throw error;
    return getJson<KeyFile>(storage, keyFileKey(server)); // another process made it first: use theirs
  }
}
