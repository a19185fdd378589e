import { objectPlace } from '../codec/cipher.js';
import type { StoredPlace } from '../codec/repository-codec.js';

/**
 * Where a super block or a block map belongs, for encryption: the server,
 * the backup whose bundle holds it, the file and (a super block) its exact
 * bundle and offset. A super block moved to another file, backup or
 * position fails to decrypt. Format 1 objects never held either, so no
 * unbound (legacy) object is accepted.
 */
export function superBlockPlace(server: string, owner: string, path: string, bundle: number, offset: number): StoredPlace {
  return { place: objectPlace('file', server, owner, path, `super block ${bundle}:${offset}`), legacy: false };
}

export function blockMapPlace(server: string, owner: string, path: string): StoredPlace {
  return { place: objectPlace('file', server, owner, path, 'block map'), legacy: false };
}
