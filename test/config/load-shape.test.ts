// What is not a lab file is said in one line — too big, not UTF-8, nested without end —
// and a lab file of 10,000 VMs loads; paths in it are resolved against its own folder.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { labWithVms } from '../../bench/lab-load.ts';
import { decodeText, loadLab, MAX_LAB_BYTES, parseLab } from '../../src/config/load.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-load-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const LAB = `proxmox:
  url: https://pve1.lan:8006
  token: igpu-split@pve!lab
  tokenSecretFile: secrets/token
  caFile: ~/pve-root-ca.pem
hosts: [{ node: pve1 }]
kubernetes: { kubeconfig: ../k3s.yaml }
`;

function oneLine(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    assert.ok(!error.oneLine().includes('\n'));
    return true;
  };
}

test('paths are resolved against the lab file’s folder, ~ against home; written forms kept', async () => {
  const file = join(dir, 'labs', 'a', 'igpu-split.yaml');
  const lab = parseLab(LAB, file);
  assert.equal(lab.proxmox.tokenSecretFile, join(dir, 'labs/a/secrets/token'));
  assert.equal(lab.proxmox.caFile, join(homedir(), 'pve-root-ca.pem'));
  assert.equal(lab.kubernetes.kubeconfig, join(dir, 'labs/k3s.yaml'));
  assert.equal(lab.source?.written[join(dir, 'labs/a/secrets/token')], 'secrets/token');
});

test('encodings: a UTF-8 byte-order mark is fine; UTF-16, UTF-32, NUL and broken UTF-8 are named', () => {
  assert.equal(decodeText(Buffer.from(`\uFEFF${LAB}`), 'lab.yaml'), LAB);
  const utf16 = Buffer.from(LAB, 'utf16le');
  assert.throws(
    () => decodeText(Buffer.concat([Buffer.from([0xff, 0xfe]), utf16]), 'lab.yaml'),
    oneLine(/is UTF-16/),
  );
  assert.throws(() => decodeText(utf16, 'lab.yaml'), oneLine(/is UTF-16/));
  assert.throws(
    () => decodeText(Buffer.from([0xff, 0xfe, 0, 0, 0x61, 0, 0, 0]), 'lab.yaml'),
    oneLine(/is UTF-32/),
  );
  assert.throws(() => decodeText(Buffer.from('a: 1\n\0'), 'lab.yaml'), oneLine(/NUL byte at offset 5/));
  assert.throws(
    () => decodeText(Buffer.from([0x61, 0x3a, 0x0a, 0x62, 0xe9]), 'lab.yaml'),
    oneLine(/lab\.yaml:2:2: not valid UTF-8 \(byte 0xe9 at offset 4\)/),
  );
});

test('too big, too deep, or not a mapping: one line each', async () => {
  const big = join(dir, 'big.yaml');
  await writeFile(big, `${LAB}#${'x'.repeat(MAX_LAB_BYTES)}\n`);
  await assert.rejects(
    loadLab(big),
    oneLine(/is 1,048,\d+ bytes; lab files over 1 MB \(1,048,576 bytes\) are refused/),
  );
  assert.throws(
    () => parseLab(`a: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`, 'lab.yaml'),
    oneLine(/lab\.yaml: nested too deeply to read: not a lab file/),
  );
  const blocks = Array.from({ length: 40 }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n');
  assert.throws(() => parseLab(`${blocks} x\n`, 'lab.yaml'), oneLine(/nested more than 32 levels deep/));
  assert.throws(() => parseLab('- a\n- b\n', 'lab.yaml'), oneLine(/must be a mapping .* not a list/));
  // Brackets inside quotes and comments do not count.
  const quoted = LAB.replace(
    'hosts: [{ node: pve1 }]',
    `hosts: [{ node: "pve${'['.repeat(50)}" }] # ${'{'.repeat(50)}`,
  );
  assert.equal(parseLab(quoted, 'lab.yaml').hosts[0]?.node, `pve${'['.repeat(50)}`);
});

test('a lab file of 10,000 VMs loads, and a duplicate among them is named', async () => {
  const file = join(dir, 'many.yaml');
  const text = labWithVms(10_000);
  assert.ok(Buffer.byteLength(text) < MAX_LAB_BYTES);
  await writeFile(file, text);
  assert.equal((await loadLab(file)).vms.length, 10_000);
  assert.throws(
    () => parseLab(`${text}  - { vmid: 1000, host: pve0, os: ubuntu }\n`, 'many.yaml'),
    oneLine(/vms\[10000\]\.vmid: vmid 1000 is listed twice/),
  );
});
