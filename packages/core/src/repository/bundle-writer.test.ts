import { describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import { BundleWriter } from './bundle-writer.js';
import { Repository } from './repository.js';
import type { StorageDriver } from '../storage/storage-driver.js';

/** A store that, like a slow remote one, starts reading a put's body only after a while. */
function slowStore(): StorageDriver & { puts: string[] } {
  const puts: string[] = [];
  return {
    type: 'slow',
    location: 'slow://',
    puts,
    async put(key: string, body: Readable | Uint8Array | string) {
      puts.push(key);
      await new Promise((resolve) => setTimeout(resolve, 50));
      let size = 0;
      for await (const chunk of body as Readable) size += (chunk as Buffer).length;
      return { size };
    },
    get: async () => {
      throw new Error('not used');
    },
    stat: async () => undefined,
    list: async function* () {},
    delete: async () => {},
    close: async () => {},
  };
}

describe('BundleWriter', () => {
  it('abort before the store reads the bundle: the put fails, the process does not (no unheard stream error)', async () => {
    const store = slowStore();
    const writer = new BundleWriter(new Repository(store, 'pg', 1, 'repo1'), '20261125T000000');
    await writer.writeFile([Buffer.from('some bytes')], 0, 'base/1/1');
    let crashed: unknown;
    const onUncaught = (error: unknown) => (crashed = error);
    process.once('uncaughtException', onUncaught);
    try {
      writer.abort(new Error('disk on fire'));
      await writer.drain();
      await new Promise((resolve) => setTimeout(resolve, 100)); // past the store's delay
      expect(crashed).toBeUndefined();
      expect(store.puts).toEqual(['pg/backups/20261125T000000/bundle-000001.dat']);
      await expect(writer.writeFile([Buffer.from('more')], 0, 'base/1/2')).rejects.toThrow('disk on fire');
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
