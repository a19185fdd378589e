import type { Readable } from 'node:stream';
import type { StorageDriver } from './storage-driver.js';

/** Read a whole (small) object into memory: manifests, identity files. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export async function getJson<T>(storage: StorageDriver, key: string): Promise<T> {
  return JSON.parse((await readAll(await storage.get(key))).toString('utf8')) as T;
}

export async function putJson(storage: StorageDriver, key: string, value: unknown, ifNotExists = false): Promise<void> {
  await storage.put(key, JSON.stringify(value, null, 1) + '\n', { ifNotExists });
}
