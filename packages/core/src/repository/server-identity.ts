import { timingSafeEqual } from 'node:crypto';
import { objectPlace, recordMac } from '../codec/cipher.js';

/**
 * The identity of the cluster a repository section belongs to. Written by
 * the first backup (or archive-push) and compared on every later one, so
 * that two clusters never mix their backups and WAL ("systemid coherence").
 */
export interface ServerIdentity {
  systemIdentifier: string;
  /** server_version_num of the cluster when it was first seen, e.g. 150018. */
  pgVersion: number;
  createdAt: string;
  /**
   * In an encrypted repository: "hmac-sha256:<hex>" over the fields above
   * and the server (recordMac, with a key derived from the data key).
   */
  mac?: string;
}

/** An identity as read: `authenticated` false for one without a MAC in an encrypted repository (written by an earlier pgharbor, or by someone else). */
export type ReadIdentity = ServerIdentity & { authenticated?: boolean };

export function identityPlace(server: string, identity: ServerIdentity): Buffer {
  return objectPlace('identity', server, identity.systemIdentifier, String(identity.pgVersion), identity.createdAt);
}

export function signIdentity(dataKey: Buffer, server: string, identity: ServerIdentity): ServerIdentity {
  const { systemIdentifier, pgVersion, createdAt } = identity;
  const fields = { systemIdentifier, pgVersion, createdAt };
  return { ...fields, mac: `hmac-sha256:${recordMac(dataKey, identityPlace(server, fields))}` };
}

export function identityMacMatches(dataKey: Buffer, server: string, identity: ServerIdentity): boolean {
  if (typeof identity.systemIdentifier !== 'string' || typeof identity.pgVersion !== 'number' || typeof identity.createdAt !== 'string') return false;
  const expected = Buffer.from(signIdentity(dataKey, server, identity).mac!);
  const actual = Buffer.from(String(identity.mac));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Only the major version matters: minor upgrades keep the same data format. */
export function pgMajor(versionNum: number): number {
  return versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 100);
}
