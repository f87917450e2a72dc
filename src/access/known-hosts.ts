// OpenSSH known_hosts, as sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes it:
//   [marker] hostpatterns keytype base64-key [comment]
// Host patterns are comma separated, may use * and ? and a leading ! to negate,
// name non-default ports as [host]:port, and may be hashed as |1|salt|hmac-sha1.

import { createHash, createHmac } from 'node:crypto';

export interface KnownHostLine {
  line: number;
  marker?: '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { kind: 'match'; line: number }
  | { kind: 'unknown' }
  | { kind: 'changed'; line: number; knownFingerprint: string }
  | { kind: 'revoked'; line: number };

export function parseKnownHosts(text: string): KnownHostLine[] {
  const lines: KnownHostLine[] = [];
  text.split('\n').forEach((raw, index) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#')) return;
    let marker: KnownHostLine['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as typeof marker;
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) return;
    lines.push({ line: index + 1, marker, patterns, keyType, key: Buffer.from(key, 'base64') });
  });
  return lines;
}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** `SHA256:…` as ssh-keygen -l prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  return key.subarray(4, 4 + length).toString('latin1');
}

export function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    if (globMatch(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatch(pattern: string, name: string): boolean {
  const source = pattern
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`).test(name.toLowerCase());
}

/** Key types known for a host, in file order: offered to the server so it shows a key we can check. */
export function knownKeyTypes(lines: readonly KnownHostLine[], name: string): string[] {
  const types = lines.filter((l) => !l.marker && hostMatches(l.patterns, name)).map((l) => l.keyType);
  return [...new Set(types)];
}

export function verifyHostKey(
  lines: readonly KnownHostLine[],
  name: string,
  offered: Buffer,
): HostKeyVerdict {
  const revoked = lines.find((l) => l.marker === '@revoked' && l.key.equals(offered));
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const forHost = lines.filter((l) => !l.marker && hostMatches(l.patterns, name));
  const same = forHost.find((l) => l.key.equals(offered));
  if (same) return { kind: 'match', line: same.line };
  const offeredType = keyTypeOf(offered);
  const other = forHost.find((l) => l.keyType === offeredType) ?? forHost[0];
  if (other) return { kind: 'changed', line: other.line, knownFingerprint: fingerprint(other.key) };
  return { kind: 'unknown' };
}

export function knownHostsLine(name: string, key: Buffer): string {
  return `${name} ${keyTypeOf(key)} ${key.toString('base64')}`;
}
