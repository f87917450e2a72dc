// The simulator's rules without HTTP: mdev instances, digests, privileges, the raw-device
// rule, mapping drift, EFI disk recreation and tasks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mdevUuid } from '../../src/proxmox/api-spec.ts';
import { type Caller, type MdevEvent, SimError, SimulatorState } from '../../src/sim/proxmox/state.ts';
import { UHD630, uhd630Entry } from '../support/simulator.ts';

const ENTRY = uhd630Entry('pve1');
const TOKEN: Caller = { user: 'igpu@pve', token: 'split' };
const ROOT: Caller = { user: 'root@pam' };

function lab(events: MdevEvent[] = []): SimulatorState {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1, onMdev: (e) => events.push(e) });
  state.addNode('pve1', { ...UHD630 });
  state.mappings.set('iGPU', { mdev: true, map: [ENTRY] });
  state.addToken('igpu@pve!split', 'secret', {
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Disk', 'VM.Config.Options', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Use', 'Mapping.Audit'],
    '/storage': ['Datastore.AllocateSpace'],
  });
  for (const vmid of [101, 102])
    state.addVm({ vmid, node: 'pve1', status: 'stopped', config: { machine: 'q35', bios: 'ovmf' } });
  return state;
}

const vmOf = (state: SimulatorState, vmid: number) => state.vm(vmid);
const available = (state: SimulatorState) =>
  Object.fromEntries(state.mdevTypes('pve1').map((t) => [t.type, t.available]));
const simError = (status: number, pattern: RegExp) => (error: unknown) =>
  error instanceof SimError && error.status === status && pattern.test(error.message);

test('mdev instances are taken on start and given back on stop, as the formula allows', () => {
  const events: MdevEvent[] = [];
  const state = lab(events);
  assert.deepEqual(available(state), { 'i915-GVTg_V5_8': 2, 'i915-GVTg_V5_4': 1 });
  state.updateConfig(101, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' }, TOKEN);
  state.updateConfig(102, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' }, TOKEN);
  state.start(101);
  assert.deepEqual(available(state), { 'i915-GVTg_V5_8': 0, 'i915-GVTg_V5_4': 0 });
  assert.throws(
    () => state.start(102),
    simError(500, /pci device '0000:00:02.0' has no available instances of 'i915-GVTg_V5_4'/),
  );
  state.stop(101);
  assert.deepEqual(available(state), { 'i915-GVTg_V5_8': 2, 'i915-GVTg_V5_4': 1 });
  state.start(102);
  assert.equal(state.vms.get(102)?.status, 'running');
  assert.equal(mdevUuid(102, 0), '00000000-0000-0000-0000-000000000102');
  assert.deepEqual(
    events.map((e) => `${e.action} ${e.uuid}`),
    [
      'create 00000000-0000-0000-0000-000000000101',
      'remove 00000000-0000-0000-0000-000000000101',
      'create 00000000-0000-0000-0000-000000000102',
    ],
  );
});

test('config changes: digest, privileges, raw devices for a root@pam session only, running VM', () => {
  const state = lab();
  const digest = state.digest(101);
  state.updateConfig(101, { description: 'x' }, TOKEN, { digest });
  assert.throws(
    () => state.updateConfig(101, { description: 'y' }, TOKEN, { digest }),
    simError(500, /^checksum mismatch \(file change by other user\?\)$/),
  );
  const raw = { hostpci0: '0000:00:02.0,mdev=i915-GVTg_V5_4' };
  assert.throws(
    () => state.updateConfig(101, raw, TOKEN),
    simError(500, /only root can set 'hostpci0' config for non-mapped devices/),
  );
  // Even root@pam's own token is not root for this rule.
  assert.throws(
    () => state.updateConfig(101, raw, { user: 'root@pam', token: 'admin' }),
    simError(403, /Permission check failed \(\/vms\/101, VM.Config.HWType\)/),
  );
  state.addToken('root@pam!admin', 's', { '/': ['VM.Config.HWType'] });
  assert.throws(
    () => state.updateConfig(101, raw, { user: 'root@pam', token: 'admin' }),
    simError(500, /only root/),
  );
  state.updateConfig(101, raw, ROOT);
  assert.throws(
    () => state.updateConfig(102, { hostpci1: 'mapping=nope,mdev=i915-GVTg_V5_4' }, ROOT),
    simError(500, /PCI device mapping not found for 'nope'/),
  );
  assert.throws(
    () => state.updateConfig(102, { hostpci1: 'mapping=iGPU,colour=red' }, TOKEN),
    (error: unknown) =>
      error instanceof SimError && /unknown key "colour"/.test(error.errors?.hostpci1 ?? ''),
  );
  vmOf(state, 102).config.machine = 'pc-i440fx-9.0';
  assert.throws(
    () => state.updateConfig(102, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' }, TOKEN),
    simError(500, /pcie=1 needs the q35 machine type/),
  );
  // …unless the same change makes it q35.
  state.updateConfig(102, { machine: 'q35', hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' }, TOKEN);
  state.start(101);
  // Running: the change waits as pending, and only the raw address's owner may make it.
  assert.throws(
    () => state.updateConfig(101, {}, TOKEN, { delete: 'hostpci0' }),
    simError(500, /only root can set 'hostpci0' config for non-mapped devices/),
  );
  state.updateConfig(101, {}, ROOT, { delete: 'hostpci0' });
  assert.match(state.vm(101).config.hostpci0 ?? '', /^0000:00:02.0/);
  assert.equal(state.configOf(101, false).hostpci0, undefined);
  state.stop(101);
  state.start(101);
  assert.equal(state.vm(101).config.hostpci0, undefined);
});

test('a token without Mapping.Use on the mapping cannot attach it', () => {
  const state = lab();
  state.addToken('other@pve!t', 's', { '/vms/101': ['VM.Config.HWType'] });
  assert.throws(
    () =>
      state.updateConfig(
        101,
        { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4' },
        { user: 'other@pve', token: 't' },
      ),
    simError(403, /Permission check failed \(\/mapping\/pci\/iGPU, Mapping.Use\)/),
  );
});

test('mapping drift: a missing or changed property is an error check and blocks the start', () => {
  const state = lab();
  assert.deepEqual(state.mappingChecks('iGPU', 'pve1'), []);
  state.mappings.set('old', { mdev: true, map: ['node=pve1,path=0000:00:02.0,id=8086:3e92,iommugroup=2'] });
  assert.deepEqual(
    state.mappingChecks('old', 'pve1').map((c) => c.message),
    [
      "missing expected property 'subsystem-id' for device '0000:00:02.0'",
      "'iommugroup' does not match for '0000:00:02.0' (1 != 2)",
    ],
  );
  assert.match(state.mappingChecks('old', 'pve9')[0]?.message ?? '', /no entry for node 'pve9'/);
  state.updateConfig(101, { hostpci0: 'mapping=old,mdev=i915-GVTg_V5_4' }, ROOT);
  assert.throws(
    () => state.start(101),
    simError(500, /PCI device mapping invalid \(hardware probably changed\)/),
  );
});

test('recreating the EFI disk keeps the old volume as unused and allocates a new one', () => {
  const state = lab();
  vmOf(state, 101).config.efidisk0 = 'local-lvm:vm-101-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M';
  // Proxmox refuses to set and delete one key in a call, so it takes two.
  assert.throws(
    () => state.updateConfig(101, { efidisk0: 'local-lvm:1' }, TOKEN, { delete: 'efidisk0' }),
    (error: unknown) =>
      error instanceof SimError &&
      error.errors?.delete === "you can't use '-efidisk0' and -delete efidisk0' at the same time",
  );
  state.updateConfig(101, {}, TOKEN, { delete: 'efidisk0' });
  state.updateConfig(101, { efidisk0: 'local-lvm:1,efitype=4m,pre-enrolled-keys=0' }, TOKEN);
  const config = state.vms.get(101)?.config ?? {};
  assert.equal(config.unused0, 'local-lvm:vm-101-disk-0');
  assert.equal(config.efidisk0, 'local-lvm:vm-101-disk-1,efitype=4m,pre-enrolled-keys=0,size=4M');
});

test('tasks end with OK or the error as exit status; a guest ignoring shutdown times out', async () => {
  const state = lab();
  state.updateConfig(101, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4' }, TOKEN);
  state.updateConfig(102, { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4' }, TOKEN);
  const first = state.runTask('pve1', 'qmstart', '101', TOKEN, () => state.start(101));
  const second = state.runTask('pve1', 'qmstart', '102', TOKEN, () => state.start(102));
  assert.match(first, /^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmstart:101:igpu@pve!split:$/);
  assert.equal(state.tasks.get(first)?.status, 'running');
  await sleep(20);
  assert.equal(state.tasks.get(first)?.exitstatus, 'OK');
  assert.match(state.tasks.get(second)?.exitstatus ?? '', /no available instances/);
  vmOf(state, 101).ignoresShutdown = true;
  const shutdown = state.shutdownTask(101, TOKEN, 2);
  await sleep(20);
  assert.equal(state.tasks.get(shutdown)?.exitstatus, 'VM quit/powerdown failed - got timeout');
  assert.equal(state.vms.get(101)?.status, 'running');
  const forced = state.shutdownTask(101, TOKEN, 2, true);
  await sleep(20);
  assert.equal(state.tasks.get(forced)?.exitstatus, 'OK');
  assert.equal(state.vms.get(101)?.status, 'stopped');
});
