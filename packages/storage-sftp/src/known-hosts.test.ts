import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint, keyTypeOf, parseKnownHosts, verifyHostKey } from './known-hosts.js';

/** A fake ed25519 public key blob: string "ssh-ed25519", then 32 key bytes. */
function blob(seed: number): Buffer {
  const type = Buffer.from('ssh-ed25519');
  const key = Buffer.alloc(32, seed);
  const out = Buffer.alloc(4 + type.length + 4 + key.length);
  out.writeUInt32BE(type.length, 0);
  type.copy(out, 4);
  out.writeUInt32BE(key.length, 4 + type.length);
  key.copy(out, 8 + type.length);
  return out;
}
const line = (patterns: string, key: Buffer, marker = '') => `${marker ? marker + ' ' : ''}${patterns} ssh-ed25519 ${key.toString('base64')}`;

describe('known_hosts', () => {
  const good = blob(1);
  const other = blob(2);

  it('matches plain names, [host]:port off port 22, and lists of names', () => {
    const hosts = parseKnownHosts([line('backup.example.net,10.0.0.5', good), line('[10.0.0.5]:2222', other), '# comment', ''].join('\n'));
    expect(verifyHostKey(hosts, 'backup.example.net', 22, good)).toBe('trusted');
    expect(verifyHostKey(hosts, '10.0.0.5', 22, good)).toBe('trusted');
    expect(verifyHostKey(hosts, '10.0.0.5', 2222, other)).toBe('trusted');
    expect(verifyHostKey(hosts, '10.0.0.5', 2222, good)).toBe('mismatch');
    expect(verifyHostKey(hosts, 'backup.example.net', 2222, good)).toBe('unknown');
    expect(verifyHostKey(hosts, 'elsewhere', 22, good)).toBe('unknown');
  });

  it('understands wildcards and negations', () => {
    const hosts = parseKnownHosts(line('*.example.net,!evil.example.net,db?', good));
    expect(verifyHostKey(hosts, 'a.example.net', 22, good)).toBe('trusted');
    expect(verifyHostKey(hosts, 'db1', 22, good)).toBe('trusted');
    expect(verifyHostKey(hosts, 'evil.example.net', 22, good)).toBe('unknown');
    expect(verifyHostKey(hosts, 'example.net', 22, good)).toBe('unknown');
  });

  it('matches hashed names (HashKnownHosts yes)', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update('[db.internal]:2200').digest('base64');
    const hosts = parseKnownHosts(line(`|1|${salt.toString('base64')}|${hash}`, good));
    expect(verifyHostKey(hosts, 'db.internal', 2200, good)).toBe('trusted');
    expect(verifyHostKey(hosts, 'db.internal', 22, good)).toBe('unknown');
  });

  it('refuses revoked keys and ignores cert-authority lines', () => {
    const hosts = parseKnownHosts([line('db', good), line('*', good, '@revoked'), line('*', other, '@cert-authority')].join('\n'));
    expect(verifyHostKey(hosts, 'db', 22, good)).toBe('revoked');
    expect(verifyHostKey(hosts, 'db', 22, other)).toBe('mismatch');
  });

  it('describes keys like ssh-keygen -l', () => {
    expect(keyTypeOf(good)).toBe('ssh-ed25519');
    expect(fingerprint(good)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
