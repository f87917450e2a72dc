// VF counting for `status`: per SR-IOV host, VFs used and free from the pool's map and the
// VMs' configs, as the simulator hands them out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { vfUsage } from '../../src/vm/vf.ts';
import { UHD630 } from '../support/simulator.ts';

const entry = (node: string, fn: number) =>
  `node=${node},path=0000:00:02.${fn},id=8086:46d1,subsystem-id=8086:7270,iommugroup=${fn}`;

test('VFs used and free per host: running pool VMs and raw holders count, stopped ones do not', () => {
  const state = new SimulatorState({ taskMs: 1 });
  for (const node of ['pve2', 'pve3']) {
    state.addNode(node, {
      ...UHD630,
      vendorDevice: '8086:46d1',
      subsystem: '8086:7270',
      iommuGroup: 0,
      totalVfs: 7,
    });
    state.setVirtualFunctions(node, 3);
  }
  const map = [1, 2, 3].flatMap((fn) => [entry('pve2', fn), entry('pve3', fn)]);
  state.mappings.set('iGPU-VF', { mdev: false, map });
  const vm = (vmid: number, node: string, hostpci0: string) =>
    state.addVm({ vmid, node, status: 'stopped', config: { machine: 'q35', hostpci0 } });
  vm(201, 'pve2', 'mapping=iGPU-VF,pcie=1');
  vm(202, 'pve2', 'mapping=iGPU-VF,pcie=1');
  vm(203, 'pve2', 'mapping=iGPU-VF,pcie=1');
  vm(300, 'pve3', '0000:00:02.2,pcie=1');
  state.start(201);
  state.start(202);
  state.start(300);
  const vms = [...state.vms.values()].map((v) => ({
    vmid: v.vmid,
    node: v.node,
    running: v.status === 'running',
    config: v.config,
  }));
  const usage = vfUsage({ name: 'iGPU-VF', map }, vms);
  assert.deepEqual(
    usage.map((u) => [u.node, u.vfs, u.used, u.free, u.users.map((x) => x.vmid)]),
    [
      ['pve2', 3, 2, 1, [201, 202]],
      ['pve3', 3, 1, 2, [300]],
    ],
  );
  // The same count as the simulator's own record of what it handed out.
  assert.equal(state.heldDevices('pve2').size, 2);
});
