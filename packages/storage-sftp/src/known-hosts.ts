import { createHash, createHmac } from 'node:crypto';

/**
 * OpenSSH known_hosts, enough to verify a server the way `ssh` with
 * StrictHostKeyChecking=yes does: plain and hashed (`|1|salt|hash`) host
 * patterns, `[host]:port` for non-standard ports, `*`/`?` wildcards,
 * `!negation`, and `@revoked` keys. `@cert-authority` lines are skipped
 * (host certificates are not supported).
 */
export interface KnownHost {
  marker?: '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  /** The public key blob (what the server presents during key exchange). */
  key: Buffer;
}

export type HostKeyVerdict = 'trusted' | 'unknown' | 'mismatch' | 'revoked';

export function parseKnownHosts(text: string): KnownHost[] {
  const hosts: KnownHost[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0].startsWith('@') ? (fields.shift() as KnownHost['marker']) : undefined;
    const [patterns, keyType, base64] = fields;
    if (!patterns || !keyType || !base64) continue;
    hosts.push({ marker, patterns, keyType, key: Buffer.from(base64, 'base64') });
  }
  return hosts;
}

/** The name known_hosts uses for a host: "host" on port 22, "[host]:port" otherwise. */
export function hostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function verifyHostKey(hosts: KnownHost[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = hostName(host, port);
  const matching = hosts.filter((entry) => entry.marker !== '@cert-authority' && matchesHost(entry.patterns, name));
  if (matching.some((entry) => entry.marker === '@revoked' && entry.key.equals(key))) return 'revoked';
  const candidates = matching.filter((entry) => entry.marker === undefined);
  if (candidates.some((entry) => entry.key.equals(key))) return 'trusted';
  return candidates.length > 0 ? 'mismatch' : 'unknown';
}

/** "SHA256:…" as `ssh-keygen -l` prints it, for messages. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a public key blob ("ssh-ed25519"). */
export function keyTypeOf(key: Buffer): string {
  const length = key.length >= 4 ? key.readUInt32BE(0) : 0;
  return key.subarray(4, 4 + length).toString('latin1');
}

function matchesHost(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) return matchesHashed(patterns, name);
  let matched = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    if (!wildcard(negated ? pattern.slice(1) : pattern).test(name)) continue;
    if (negated) return false; // a matching negation wins over any positive match
    matched = true;
  }
  return matched;
}

/** "|1|base64(salt)|base64(HMAC-SHA1(salt, name))", as written by HashKnownHosts. */
function matchesHashed(pattern: string, name: string): boolean {
  const [, , salt, hash] = pattern.split('|');
  if (!salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

function wildcard(pattern: string): RegExp {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 'i');
}
