// The notes line d5cfd90's VM apply wrote (format 1: no `format`, and no `machineSet`
// beside a machine it changed): today's VM rollback on the configs d5cfd90 left gives back
// the original configs. What today's apply writes carries its format and reads back; a
// line of a newer format is refused by rollback and by plan, naming the key.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { rollbackVms } from '../../src/vm/apply.ts';
import { gatherVmFacts } from '../../src/vm/gather.ts';
import { MARKER_FORMAT, planVms, readMarker, readNotesLine, withMarker } from '../../src/vm/plan.ts';
import { tokenApi, UHD630, uhd630Entry } from '../support/simulator.ts';
import { D5CFD90 } from './fixtures.ts';

interface VmSnapshot {
  status: 'running' | 'stopped';
  config: Record<string, string>;
}
type Fixture = Record<string, { node: string; before: VmSnapshot; after: VmSnapshot }>;

/** The simulator with each VM as d5cfd90's apply left it, its nodes and the mapping. */
function labAfter(vms: Fixture) {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  const nodes = [...new Set(Object.values(vms).map((vm) => vm.node))];
  for (const node of nodes) state.addNode(node, { ...UHD630 });
  state.mappings.set('iGPU', { mdev: true, map: nodes.map(uhd630Entry) });
  for (const [vmid, vm] of Object.entries(vms)) {
    state.addVm({ vmid: Number(vmid), node: vm.node, status: 'stopped', config: { ...vm.after.config } });
    if (vm.after.status === 'running') state.start(Number(vmid));
  }
  state.addToken('igpu@pve!split', 's', {
    '/': ['Sys.Audit'],
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Disk', 'VM.Config.Options', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Use', 'Mapping.Audit'],
    '/storage': ['Datastore.AllocateSpace'],
  });
  return { state, api: tokenApi(state) };
}

const fixture = async (name: string): Promise<Fixture> =>
  JSON.parse(await readFile(join(D5CFD90, 'vms', `${name}.json`), 'utf8'));

for (const [name, log] of [
  ['demo', ['VM 101: hostpci0 removed', 'VM 102: hostpci0 removed']],
  ['change-machine', ['VM 101: hostpci0 removed, machine put back, original EFI disk put back']],
] as const) {
  test(`${name}: today's VM rollback gives back the configs d5cfd90 changed`, async () => {
    const vms = await fixture(name);
    const { state, api } = labAfter(vms);
    const refs = Object.entries(vms).map(([vmid, vm]) => ({ vmid: Number(vmid), node: vm.node }));
    const result = await rollbackVms(api, refs, { shutdownTimeoutSeconds: 5 });
    assert.deepEqual(result.log, log);
    for (const [vmid, vm] of Object.entries(vms)) {
      const now = state.vm(Number(vmid));
      // A replaced EFI disk stays as unusedN, as after today's own rollback.
      const kept = Object.fromEntries(Object.entries(now.config).filter(([key]) => !/^unused\d+$/.test(key)));
      assert.deepEqual(kept, vm.before.config, `VM ${vmid}`);
      assert.equal(now.status, vm.before.status, `VM ${vmid}`);
    }
  });
}

test('a d5cfd90 line that changed the machine reads with the machine it set', async () => {
  const { 101: vm } = await fixture('change-machine');
  assert.deepEqual(readMarker(vm?.after.config.description), {
    key: 'hostpci0',
    machine: 'pc-i440fx-9.0',
    machineSet: 'q35',
    efidisk0: 'local-lvm:vm-101-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M',
  });
});

test('what today’s apply writes carries the format first and reads back', () => {
  const marker = { key: 'hostpci0', machine: 'pc-i440fx-9.0', machineSet: 'q35' };
  const notes = withMarker('k3s node', marker);
  assert.equal(
    notes,
    `k3s node\nigpu-split: {"format":${MARKER_FORMAT},"key":"hostpci0","machine":"pc-i440fx-9.0","machineSet":"q35"}`,
  );
  assert.deepEqual(readNotesLine(notes), { marker });
});

test('a line of a newer format: rollback and plan refuse the VM, naming the key; nothing changes', async () => {
  const vms = await fixture('demo');
  const line = `igpu-split: {"format":${MARKER_FORMAT + 1},"key":"hostpci0","new":{}}`;
  for (const vm of Object.values(vms)) vm.after.config.description = line;
  const { state, api } = labAfter(vms);
  const before = JSON.stringify(state.vm(101).config);
  const newer = `the igpu-split line in its notes was written by a newer igpu-split \\("format": ${MARKER_FORMAT + 1}; this one reads up to ${MARKER_FORMAT}\\)`;
  await assert.rejects(rollbackVms(api, [{ vmid: 101, node: 'pve1' }]), (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError);
    assert.match(error.oneLine(), new RegExp(`^VM 101 on pve1: VM 101: ${newer}: nothing was rolled back`));
    return true;
  });
  assert.equal(JSON.stringify(state.vm(101).config), before);
  const desired = [{ vmid: 101, node: 'pve1', vgpu: 'auto' }];
  const options = { mapping: 'iGPU', identity: { user: 'igpu@pve', token: 'split' } };
  const plan = planVms(await gatherVmFacts(api, desired, 'iGPU'), desired, options);
  assert.match(plan.refused ?? '', new RegExp(`^VM 101: ${newer}$`));
  assert.deepEqual(plan.changes, []);
});
