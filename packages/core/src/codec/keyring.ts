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

/**
 * What a repository's encryption.json may ask of scrypt. The parameters
 * come from the repository, which someone else may write: unbounded, N =
 * 2^30 asks for 128 GiB before the passphrase is even tried. 128·N·r is
 * the memory scrypt needs (256 MiB at most here), 128·N·r·p its work.
 */
export const SCRYPT_LIMITS = { minN: 2 ** 10, maxN: 2 ** 20, maxR: 32, maxP: 16, maxMemory: 256 * 1024 * 1024, maxWork: 1024 * 1024 * 1024 };
const SALT_BYTES = { min: 16, max: 64 };

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
  let file = (await storage.stat(key)) ? await readKeyFile(storage, key, where) : undefined;
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
  const wrapped = checkKeyFile(file, server, `${where}: ${key}`);
  const kek = await kekOf(secret, file.kdf, where);
  // authTagLength: without it GCM accepts a tag cut down to 4 bytes, and checks only those.
  const decipher = createDecipheriv('aes-256-gcm', kek, wrapped.nonce, { authTagLength: WRAP_TAG_BYTES });
  decipher.setAAD(wrapAad(server));
  decipher.setAuthTag(wrapped.tag);
  let dataKey: Buffer;
  try {
    dataKey = Buffer.concat([decipher.update(wrapped.ciphertext), decipher.final()]);
  } catch {
    throw new HarborError(`wrong encryption ${secret.kind === 'passphrase' ? 'passphrase' : 'key'} for ${where}: it does not open ${key}`, {
      hint: `check ${secret.source}; nothing was read or written`,
    });
  }
  const keyId = keyIdOf(dataKey);
  if (keyId.toString('hex') !== file.keyId) throw tampered(`${where}: ${key}`, `its keyId ${file.keyId} is not the id of the key it holds (${keyId.toString('hex')})`);
  return { key: dataKey, keyId };
}

const WRAP_TAG_BYTES = 16;

function tampered(where: string, what: string): HarborError {
  return new HarborError(`${where} is not a valid pgharbor key file: ${what}`, {
    hint: 'it was modified (or damaged); put back the copy of encryption.json you kept, nothing was read or written',
  });
}

/**
 * Everything in encryption.json is checked before it is used: scrypt's
 * parameters within SCRYPT_LIMITS, exact sizes for the salt, nonce, wrapped
 * key and tag, the server it belongs to. A tampered file fails here, fast,
 * with a message, instead of in scrypt or OpenSSL.
 */
function checkKeyFile(file: KeyFile, server: string, where: string): { nonce: Buffer; ciphertext: Buffer; tag: Buffer } {
  if (file.server !== server) throw tampered(where, `it belongs to server "${String(file.server)}"`);
  if (typeof file.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(file.keyId)) throw tampered(where, 'keyId is not 16 hex digits');
  const kdf = file.kdf as Record<string, unknown> | undefined;
  if (!kdf || typeof kdf !== 'object') throw tampered(where, 'kdf is missing');
  if (kdf.name === 'scrypt') {
    const { N, r, p } = kdf as { N: unknown; r: unknown; p: unknown };
    const L = SCRYPT_LIMITS;
    if (!isInt(N) || N < L.minN || N > L.maxN || (N & (N - 1)) !== 0) throw tampered(where, `scrypt N ${String(N)} is not a power of two from 2^10 to 2^20`);
    if (!isInt(r) || r < 1 || r > L.maxR) throw tampered(where, `scrypt r ${String(r)} is not from 1 to ${L.maxR}`);
    if (!isInt(p) || p < 1 || p > L.maxP) throw tampered(where, `scrypt p ${String(p)} is not from 1 to ${L.maxP}`);
    if (128 * N * r > L.maxMemory || 128 * N * r * p > L.maxWork) throw tampered(where, `scrypt N=${N} r=${r} p=${p} needs more than ${L.maxMemory / 2 ** 20} MiB or too much work`);
    const salt = base64Of(kdf.salt);
    if (!salt || salt.length < SALT_BYTES.min || salt.length > SALT_BYTES.max) throw tampered(where, `the scrypt salt is not ${SALT_BYTES.min} to ${SALT_BYTES.max} bytes of base64`);
  } else if (kdf.name !== 'key-file') {
    throw tampered(where, `unknown kdf "${String(kdf.name)}"`);
  }
  const wrapped = (file.wrappedKey ?? {}) as Record<string, unknown>;
  const nonce = base64Of(wrapped.nonce);
  const ciphertext = base64Of(wrapped.ciphertext);
  const tag = base64Of(wrapped.tag);
  if (nonce?.length !== 12) throw tampered(where, 'the wrapped key\'s nonce is not 12 bytes');
  if (ciphertext?.length !== 32) throw tampered(where, 'the wrapped key is not 32 bytes');
  if (tag?.length !== WRAP_TAG_BYTES) throw tampered(where, `the wrapped key's GCM tag is not ${WRAP_TAG_BYTES} bytes`);
  return { nonce, ciphertext, tag };
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** Strict base64 (Buffer.from ignores what it cannot read). */
function base64Of(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return undefined;
  return Buffer.from(value, 'base64');
}

async function readKeyFile(storage: StorageDriver, key: string, where: string): Promise<KeyFile> {
  try {
    const file = await getJson<KeyFile>(storage, key);
    if (!file || typeof file !== 'object') throw new Error('not a JSON object');
    return file;
  } catch (error) {
    if (error instanceof SyntaxError || (error as Error).message === 'not a JSON object') throw tampered(`${where}: ${key}`, 'it is not JSON');
    throw error;
  }
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
    return readKeyFile(storage, keyFileKey(server), storage.location); // another process made it first: use theirs
  }
}
