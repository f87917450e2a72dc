import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import {
  fingerprint,
  hostMatches,
  keyTypeOf,
  knownHostName,
  knownKeyTypes,
  parseKnownHosts,
  verifyHostKey,
} from '../../src/access/known-hosts.ts';

// Public key blobs: string type, then key material (values are arbitrary test bytes).
function blob(type: string, fill: number): Buffer {
  const name = Buffer.from(type);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(name.length);
  return Buffer.concat([head, name, Buffer.alloc(36, fill)]);
}
const keyA = blob('ssh-ed25519', 1);
const keyB = blob('ssh-ed25519', 2);
const keyRsa = blob('ssh-rsa', 3);

test('known_hosts names a non-default port as [host]:port', () => {
  assert.equal(knownHostName('pve1', 22), 'pve1');
  assert.equal(knownHostName('127.0.0.1', 2222), '[127.0.0.1]:2222');
});

test('patterns: lists, wildcards, negation and hashed names', () => {
  assert.ok(hostMatches('pve1,pve2', 'pve2'));
  assert.ok(hostMatches('*.lab', 'pve1.lab'));
  assert.ok(!hostMatches('*.lab,!pve9.lab', 'pve9.lab'));
  assert.ok(hostMatches('pve?', 'PVE3'));
  const salt = Buffer.alloc(20, 7);
  const hash = createHmac('sha1', salt).update('[127.0.0.1]:2222').digest('base64');
  assert.ok(hostMatches(`|1|${salt.toString('base64')}|${hash}`, '[127.0.0.1]:2222'));
  assert.ok(!hostMatches(`|1|${salt.toString('base64')}|${hash}`, '[127.0.0.1]:2223'));
});

test('verify: match, changed, unknown and revoked keys', () => {
  const text = [
    '# comment',
    `pve1 ssh-ed25519 ${keyA.toString('base64')}`,
    `pve2 ssh-rsa ${keyRsa.toString('base64')} root@pve2`,
    `@revoked * ssh-ed25519 ${keyB.toString('base64')}`,
    'garbage line',
  ].join('\n');
  const lines = parseKnownHosts(text);
  assert.equal(lines.length, 3);
  assert.deepEqual(verifyHostKey(lines, 'pve1', keyA), { kind: 'match', line: 2 });
  assert.deepEqual(verifyHostKey(lines, 'pve2', keyA), {
    kind: 'changed',
    line: 3,
    knownFingerprint: fingerprint(keyRsa),
  });
  assert.deepEqual(verifyHostKey(lines, 'pve3', keyA), { kind: 'unknown' });
  assert.deepEqual(verifyHostKey(lines, 'pve1', keyB), { kind: 'revoked', line: 4 });
  assert.deepEqual(knownKeyTypes(lines, 'pve2'), ['ssh-rsa']);
});

test('fingerprints and key types read like ssh-keygen -l', () => {
  assert.match(fingerprint(keyA), /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.equal(keyTypeOf(keyA), 'ssh-ed25519');
  assert.equal(keyTypeOf(Buffer.alloc(2)), 'unknown');
});
