import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimError, SimulatorState } from '../../src/proxmox/simulator/state.ts';

function lab(): SimulatorState {
  const state = new SimulatorState();
  state.addNode('pve1', { bdf: '0000:00:02.0', vendorDevice: '8086:3e92', apertureMiB: 256, graphicsVer: 9 });
  state.mappings.set('iGPU', { mdev: true, map: ['node=pve1,path=0000:00:02.0,id=8086:3e92,iommugroup=1'] });
  for (const vmid of [101, 102])
    state.addVm({ vmid, node: 'pve1', status: 'stopped', config: { machine: 'q35', bios: 'ovmf' } });
  return state;
}

const available = (state: SimulatorState) =>
  Object.fromEntries(state.mdevTypes('pve1').map((t) => [t.type, t.available]));
const simError = (status: number, pattern: RegExp) => (error: unknown) =>
  error instanceof SimError && error.status === status && pattern.test(error.message);

test('mdev instances are taken on start and given back on stop, as the formula allows', () => {
  const state = lab();
  assert.deepEqual(available(state), { 'i915-GVTg_V5_8': 2, 'i915-GVTg_V5_4': 1 });
  const token = { user: 'igpu@pve' };
  state.updateConfig(101, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' }, token);
  state.updateConfig(102, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' }, token);
  state.start(101);
  assert.deepEqual(available(state), { 'i915-GVTg_V5_8': 0, 'i915-GVTg_V5_4': 0 });
  assert.throws(
    () => state.start(102),
    simError(500, /no available instances of mdev type 'i915-GVTg_V5_4'/),
  );
  state.stop(101);
  assert.deepEqual(available(state), { 'i915-GVTg_V5_8': 2, 'i915-GVTg_V5_4': 1 });
  state.start(102);
  assert.equal(state.vms.get(102)?.status, 'running');
});

test('config changes: digest, running VM, raw devices for root@pam only, mapping checks', () => {
  const state = lab();
  const digest = state.digest(101);
  state.updateConfig(101, { description: 'x' }, { user: 'igpu@pve', digest });
  assert.throws(
    () => state.updateConfig(101, { description: 'y' }, { user: 'igpu@pve', digest }),
    simError(500, /detected modified configuration/),
  );
  assert.throws(
    () => state.updateConfig(101, { hostpci0: '0000:00:02.0,mdev=i915-GVTg_V5_4' }, { user: 'igpu@pve' }),
    simError(403, /only root can set 'hostpci0' config for real devices/),
  );
  state.updateConfig(101, { hostpci0: '0000:00:02.0,mdev=i915-GVTg_V5_4' }, { user: 'root@pam' });
  assert.throws(
    () => state.updateConfig(102, { hostpci1: 'mapping=nope,mdev=i915-GVTg_V5_4' }, { user: 'igpu@pve' }),
    simError(400, /no such PCI mapping 'nope'/),
  );
  assert.throws(
    () => state.updateConfig(102, { hostpci1: 'mapping=iGPU,colour=red' }, { user: 'igpu@pve' }),
    simError(400, /unknown key "colour"/),
  );
  state.start(101);
  assert.throws(
    () => state.updateConfig(101, {}, { user: 'root@pam', delete: 'hostpci0' }),
    simError(500, /is running - hostpci changes need a stopped VM/),
  );
  state.stop(101);
  state.updateConfig(101, {}, { user: 'root@pam', delete: 'hostpci0' });
  assert.equal(state.vms.get(101)?.config.hostpci0, undefined);
});
