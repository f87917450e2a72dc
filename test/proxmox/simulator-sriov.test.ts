// The simulator's SR-IOV: VFs appear when sriov_numvfs is written, a pooled mapping hands
// out the first free VF at VM start, and with none free the start fails with qemu-server's
// own words (src/PVE/QemuServer/PCI.pm @ e6352be6, choose_hostpci_devices and
// reserve_pci_usage).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Caller, SimError, SimulatorState } from '../../src/sim/proxmox/state.ts';

const TOKEN: Caller = { user: 'igpu@pve', token: 'split' };
/** An N100 (Alder Lake-N, 8086:46d1) host that may make up to 7 VFs. */
const N100 = {
  bdf: '0000:00:02.0',
  vendorDevice: '8086:46d1',
  subsystem: '8086:7270',
  iommuGroup: 0,
  apertureMiB: 256,
  graphicsVer: 12,
  totalVfs: 7,
};
const vfEntry = (fn: number, group: number) =>
  `node=pve2,path=0000:00:02.${fn},id=8086:46d1,subsystem-id=8086:7270,iommugroup=${group}`;

function lab(vfs: number, vms = [201, 202, 203]): SimulatorState {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  state.addNode('pve2', { ...N100 });
  state.addToken('igpu@pve!split', 's', {
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Use', 'Mapping.Audit'],
  });
  state.setVirtualFunctions('pve2', vfs);
  state.mappings.set('iGPU-VF', {
    mdev: false,
    map: Array.from({ length: vfs }, (_, i) => vfEntry(i + 1, i + 1)),
  });
  for (const vmid of vms)
    state.addVm({
      vmid,
      node: 'pve2',
      status: 'stopped',
      config: { machine: 'q35', bios: 'ovmf', hostpci0: 'mapping=iGPU-VF,pcie=1' },
    });
  return state;
}

const failsWith = (message: string) => (error: unknown) =>
  error instanceof SimError && error.status === 500 && error.message === message;

test('VFs appear when sriov_numvfs is written: same vendor and device as the PF, own IOMMU groups', () => {
  const state = new SimulatorState();
  state.addNode('pve2', { ...N100 });
  assert.deepEqual(
    state.pciDevices('pve2').map((d) => d.id),
    ['0000:00:02.0'],
  );
  state.setVirtualFunctions('pve2', 3);
  const devices = state.pciDevices('pve2');
  assert.deepEqual(
    devices.map((d) => [d.id, d.vendor, d.device, d.iommugroup]),
    [
      ['0000:00:02.0', '0x8086', '0x46d1', 0],
      ['0000:00:02.1', '0x8086', '0x46d1', 1],
      ['0000:00:02.2', '0x8086', '0x46d1', 2],
      ['0000:00:02.3', '0x8086', '0x46d1', 3],
    ],
  );
  // An SR-IOV PF offers no mediated devices.
  assert.equal((devices[0] as { mdev?: number } | undefined)?.mdev, undefined);
  assert.deepEqual(state.mdevTypes('pve2', '0000:00:02.0'), []);
  assert.throws(() => state.setVirtualFunctions('pve2', 8), /more than sriov_totalvfs 7/);
  state.setVirtualFunctions('pve2', 0);
  assert.equal(state.pciDevices('pve2').length, 1);
});

test('a pooled mapping gives each starting VM the first free VF, in map order', () => {
  const state = lab(3);
  state.start(201);
  state.start(202);
  assert.deepEqual(
    [...state.heldDevices('pve2')],
    [
      ['0000:00:02.1', 201],
      ['0000:00:02.2', 202],
    ],
  );
  // A stopped VM gives its VF back; the next start takes the first free one again.
  state.stop(201);
  state.start(203);
  assert.equal(state.heldDevices('pve2').get('0000:00:02.1'), 203);
  assert.deepEqual(state.mappingChecks('iGPU-VF', 'pve2'), []);
});

test('with every VF taken the start fails as qemu-server says it', () => {
  const state = lab(2);
  state.start(201);
  state.start(202);
  assert.throws(() => state.start(203), failsWith("could not find a free device for 'hostpci0'"));
  assert.equal(state.vm(203).status, 'stopped');
});

test('a one-VF pool held by another VM: reserve_pci_usage refuses it, naming that VM', () => {
  const state = lab(1);
  state.start(201);
  assert.throws(() => state.start(202), failsWith("PCI device '0000:00:02.1' already in use by VMID '201'"));
});

test('a VF held by raw address is skipped by the pool', () => {
  const state = lab(2, [201]);
  state.addVm({
    vmid: 300,
    node: 'pve2',
    status: 'stopped',
    config: { machine: 'q35', hostpci0: '0000:00:02.1,pcie=1' },
  });
  state.start(300);
  state.start(201);
  assert.equal(state.heldDevices('pve2').get('0000:00:02.2'), 201);
});

test("Proxmox's checks of a VF pool: a VF that is gone, and a pool marked mdev", () => {
  const state = lab(3);
  state.setVirtualFunctions('pve2', 2);
  assert.deepEqual(state.mappingChecks('iGPU-VF', 'pve2'), [
    { severity: 'error', message: "no PCI device found for '0000:00:02.3'" },
  ]);
  assert.throws(
    () => state.start(201),
    failsWith(
      "PCI device mapping invalid (hardware probably changed): no PCI device found for '0000:00:02.3'",
    ),
  );
  state.setVirtualFunctions('pve2', 3);
  (state.mappings.get('iGPU-VF') as { mdev: boolean }).mdev = true;
  assert.match(state.mappingChecks('iGPU-VF', 'pve2')[0]?.message ?? '', /'mdev' does not match/);
  // Setting a VF through the pool is a plain passthrough: no mdev type is asked.
  (state.mappings.get('iGPU-VF') as { mdev: boolean }).mdev = false;
  state.updateConfig(201, { hostpci1: 'mapping=iGPU-VF,pcie=1' }, TOKEN);
});
