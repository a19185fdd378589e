import type { CheckContext } from '../check/check-context.js';
import { loadCompressor } from './compressors.js';
import { keyFileKey } from './keyring.js';

/**
 * `check` lines for compression and encryption, per repository: the
 * library loads, and the configured passphrase or key opens the server's
 * data key (so a wrong secret shows here, not in tonight's backup).
 */
export async function codecChecks(context: CheckContext): Promise<void> {
  const { server } = context;
  const repositories = await server.repositories().catch(() => []);
  for (const repository of repositories) {
    const label = repositories.length > 1 ? ` (${repository.name})` : '';
    const codec = repository.codec;
    await context.run(`compression${label}`, async () => {
      if (codec.compression !== 'none') await loadCompressor(codec.compression);
      return { ok: true, detail: codec.compression === 'none' ? 'none' : `${codec.compression}${codec.settings.level ? ` level ${codec.settings.level}` : ''}` };
    });
    await context.run(`encryption${label}`, async () => {
      const exists = Boolean(await repository.storage.stat(keyFileKey(server.name)));
      if (!codec.settings.encryption) {
        return exists
          ? { ok: false, detail: `${repository.location} holds encrypted data of ${server.name}, but the config has no encryption settings`, hint: 'add the encryption passphrase or key to this repository: backups and archive-push refuse to write plaintext there' }
          : { ok: true, detail: 'none' };
      }
      if (!exists) return { ok: true, detail: 'aes-256-gcm; no key stored yet (made by the first encrypted backup or archive-push)' };
      const key = await codec.key();
      return { ok: true, detail: `aes-256-gcm; the configured ${codec.settings.encryption.passphrase ? 'passphrase' : 'key'} opens key ${key.keyId.toString('hex')}` };
    });
  }
}
