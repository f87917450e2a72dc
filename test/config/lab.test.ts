// The lab file loader: a valid file with its defaults, and every kind of mistake named
// with file, line and column, the path and the allowed values.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseLab } from '../../src/config/load.ts';

const VALID = `# a lab
proxmox:
  url: https://pve1.lan:8006
  token: igpu-split@pve!lab
  tokenSecretFile: /root/.config/igpu-split/token
  fingerprint: ${'AB:'.repeat(31)}AB
hosts:
  - node: pve1
    ssh: ssh://root@pve1.lan
  - node: pve2
vms:
  - vmid: 101
    host: pve1
    os: ubuntu
  - vmid: 102
    host: pve2
    os: talos
    vgpu: i915-GVTg_V5_8
`;

function problems(text: string): string[] {
  try {
    parseLab(text, 'lab.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

test('a valid lab file, with the defaults filled in', () => {
  const lab = parseLab(VALID, 'lab.yaml');
  assert.equal(lab.mapping, 'iGPU');
  assert.equal(lab.hosts[1]?.mode, 'auto');
  assert.equal(lab.vms[0]?.vgpu, 'auto');
  assert.equal(lab.vms[1]?.vgpu, 'i915-GVTg_V5_8');
});

test('a wrong enum value names the line, the column and the allowed values', () => {
  assert.deepEqual(problems(VALID.replace('os: talos', 'os: windows')), [
    'lab.yaml:17:9: vms[1].os: must be one of: ubuntu, talos',
  ]);
});

test('an unknown key points at the key itself', () => {
  assert.deepEqual(problems(VALID.replace('    os: ubuntu', '    os: ubuntu\n    colour: red')), [
    'lab.yaml:15:5: vms[0]: unknown key colour',
  ]);
});

test('missing and cross-referenced values: the nearest place in the file', () => {
  assert.deepEqual(problems(VALID.replace('  token: igpu-split@pve!lab\n', '')), [
    'lab.yaml:3:3: proxmox.token: required (string)',
  ]);
  // Cross-references are checked once every value has the right shape.
  assert.deepEqual(problems(VALID.replace('host: pve2', 'host: pve7').replace('vmid: 102', 'vmid: 101')), [
    'lab.yaml:16:11: vms[1].host: no such host; hosts are: pve1, pve2',
    'lab.yaml:15:11: vms[1].vmid: vmid 101 is listed twice',
  ]);
});

test('the secret stays out of the file; trust is a CA file or a fingerprint, not both', () => {
  const both = VALID.replace('  tokenSecretFile: /root/.config/igpu-split/token\n', '').replace(
    'fingerprint:',
    'caFile: /etc/ca.pem\n  fingerprint:',
  );
  assert.deepEqual(problems(both), [
    'lab.yaml:3:3: proxmox.tokenSecretFile: give exactly one of tokenSecretFile or tokenSecretEnv (the secret is never written in this file)',
    'lab.yaml:6:16: proxmox.fingerprint: give caFile or fingerprint, not both',
  ]);
  assert.match(
    problems(VALID.replace('https://pve1', 'http://pve1'))[0] ?? '',
    /^lab.yaml:3:8: proxmox.url: must be an https:\/\/ URL/,
  );
});

test('YAML that does not parse, and a vGPU type that is not one', () => {
  assert.match(problems('proxmox: [unclosed\n')[0] ?? '', /^lab.yaml:\d+:\d+: not valid YAML/);
  assert.deepEqual(problems(VALID.replace('vgpu: i915-GVTg_V5_8', 'vgpu: big')), [
    'lab.yaml:18:11: vms[1].vgpu: must be auto or a GVT-g type such as i915-GVTg_V5_4',
  ]);
});
