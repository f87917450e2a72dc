import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOSTPCI, PCI_MAP_ENTRY } from '../../src/proxmox/api-spec.ts';
import {
  formatPropertyString,
  PropertyStringError,
  parsePropertyString,
} from '../../src/proxmox/property-string.ts';

test('hostpci with a mapping round-trips in a stable order', () => {
  const values = parsePropertyString('pcie=1,mdev=i915-GVTg_V5_4,mapping=iGPU', HOSTPCI);
  assert.deepEqual(values, { pcie: true, mdev: 'i915-GVTg_V5_4', mapping: 'iGPU' });
  assert.equal(formatPropertyString(values, HOSTPCI), 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1');
});

test('the default key (host) may be bare and is written first', () => {
  const values = parsePropertyString('0000:00:02.0,mdev=i915-GVTg_V5_8', HOSTPCI);
  assert.deepEqual(values, { host: '0000:00:02.0', mdev: 'i915-GVTg_V5_8' });
  assert.equal(
    formatPropertyString({ mdev: 'i915-GVTg_V5_8', pcie: false, host: '0000:00:02.0' }, HOSTPCI),
    '0000:00:02.0,mdev=i915-GVTg_V5_8,pcie=0',
  );
});

test('mapping entries need node, path and id; integers are checked', () => {
  const entry = parsePropertyString('node=pve1,path=0000:00:02.0,id=8086:3e92,iommugroup=1', PCI_MAP_ENTRY);
  assert.deepEqual(entry, { node: 'pve1', path: '0000:00:02.0', id: '8086:3e92', iommugroup: 1 });
  assert.throws(() => parsePropertyString('node=pve1,id=8086:3e92', PCI_MAP_ENTRY), /"path" is required/);
  assert.throws(
    () => parsePropertyString('node=a,path=b,id=c,iommugroup=one', PCI_MAP_ENTRY),
    /not an integer/,
  );
});

test('unknown keys, repeated keys, bad booleans and unsafe values are refused', () => {
  for (const [text, message] of [
    ['mapping=iGPU,colour=red', /unknown key "colour"/],
    ['mapping=a,mapping=b', /given twice/],
    ['mapping=iGPU,pcie=maybe', /not a boolean/],
  ] as const) {
    assert.throws(
      () => parsePropertyString(text, HOSTPCI),
      (e: unknown) => e instanceof PropertyStringError && message.test(e.message),
    );
  }
  assert.throws(() => parsePropertyString('pve1', PCI_MAP_ENTRY), /"pve1" has no key/);
  assert.throws(() => formatPropertyString({ mapping: 'a,b' }, HOSTPCI), /holds a ","/);
  assert.throws(() => formatPropertyString({ nope: 1 }, HOSTPCI), /unknown key/);
});
