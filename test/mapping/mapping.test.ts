// The mapping layer against the simulator: created when absent, entries added for new
// hosts, drift of our entries repaired, the user's entries kept, rollback exact.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyMappingPlan, rollbackMapping } from '../../src/mapping/apply.ts';
import { gatherMappingFacts, planMapping } from '../../src/mapping/plan.ts';
import type { ProxmoxApi } from '../../src/proxmox/api.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { tokenApi } from '../support/simulator.ts';

function lab(
  grants: Record<string, string[]> = {
    '/': ['Sys.Audit'],
    '/mapping/pci': ['Mapping.Modify', 'Mapping.Audit'],
  },
) {
  const state = new SimulatorState();
  const gpu = { bdf: '0000:00:02.0', subsystem: '17aa:3136', apertureMiB: 256, graphicsVer: 9 };
  state.addNode('pve1', { ...gpu, vendorDevice: '8086:3e92', iommuGroup: 1 });
  state.addNode('pve2', { ...gpu, vendorDevice: '8086:3e92', iommuGroup: 0 });
  state.addNode('pve3', { ...gpu, vendorDevice: '8086:1912', subsystem: '1462:7a12', iommuGroup: -1 });
  state.addToken('igpu@pve!split', 's', grants);
  const api = tokenApi(state);
  return { state, api };
}

const plan = async (api: ProxmoxApi, nodes = ['pve1', 'pve2', 'pve3']) =>
  planMapping(await gatherMappingFacts(api, 'iGPU', nodes));

test('a missing mapping is created with mdev=1 and one entry per host; then nothing to do', async () => {
  const { state, api } = lab();
  const first = await plan(api);
  assert.equal(first.create, true);
  assert.deepEqual(first.map, [
    'node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1,description=igpu-split',
    'node=pve2,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=0,description=igpu-split',
    // No IOMMU (GVT-g without VT-d): no group in the entry, as Proxmox expects.
    'node=pve3,path=0000:00:02.0,id=8086:1912,subsystem-id=1462:7a12,description=igpu-split',
  ]);
  assert.match(
    first.steps[0]?.command ?? '',
    /^pvesh create \/cluster\/mapping\/pci --id iGPU --mdev 1 --map 'node=pve1/,
  );
  assert.deepEqual(await applyMappingPlan(api, first), { changed: true });
  assert.equal(state.mappings.get('iGPU')?.mdev, true);
  for (const node of ['pve1', 'pve2', 'pve3']) assert.deepEqual(state.mappingChecks('iGPU', node), []);
  const second = await plan(api);
  assert.deepEqual(second.steps, []);
  assert.deepEqual(await applyMappingPlan(api, second), { changed: false });
});

test("the user's entries are kept, drift in them is a failing check naming Proxmox's message", async () => {
  const { state, api } = lab();
  state.mappings.set('iGPU', {
    mdev: false,
    map: ['node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=4'],
    description: 'mine',
  });
  const result = await plan(api, ['pve1', 'pve2']);
  assert.equal(result.create, false);
  assert.equal(result.setMdev, true);
  assert.equal(result.map[0], 'node=pve1,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=4');
  assert.match(result.map[1] ?? '', /^node=pve2,/);
  const drift = result.checks.find((c) => c.id === 'mapping.pve1.entry');
  assert.equal(drift?.status, 'fail');
  assert.match(drift?.evidence ?? '', /Proxmox: 'iommugroup' does not match for '0000:00:02.0' \(1 != 4\)/);
  assert.match(drift?.fix ?? '', /iommugroup=1$/);
  await assert.rejects(applyMappingPlan(api, result), /mapping iGPU cannot be applied: pve1 has your entry/);
  assert.equal(state.mappings.get('iGPU')?.map.length, 1, 'nothing written');
});

test('our own drifted entry is replaced, and a concurrent edit is refused by the digest', async () => {
  const { state, api } = lab();
  await applyMappingPlan(api, await plan(api, ['pve1']));
  state.node('pve1').iommuGroup = 9;
  const repaired = await plan(api, ['pve1']);
  assert.match(repaired.steps[0]?.diff ?? '', /^- node=pve1.*iommugroup=1.*\n\+ node=pve1.*iommugroup=9/);
  state.mappings.get('iGPU')?.map.push('node=pve9,path=0000:01:00.0,id=10de:1c82');
  await assert.rejects(applyMappingPlan(api, repaired), /detected modified configuration/);
});

test('rollback removes only our entries, and the mapping only when we made it and it is empty', async () => {
  const { state, api } = lab();
  await applyMappingPlan(api, await plan(api, ['pve1', 'pve2']));
  state.mappings.get('iGPU')?.map.push('node=pve9,path=0000:01:00.0,id=10de:1c82');
  assert.deepEqual(await rollbackMapping(api, 'iGPU'), ['removed 2 igpu-split entries from mapping iGPU']);
  assert.deepEqual(state.mappings.get('iGPU')?.map, ['node=pve9,path=0000:01:00.0,id=10de:1c82']);
  assert.deepEqual(await rollbackMapping(api, 'iGPU'), []);
  state.mappings.delete('iGPU');
  await applyMappingPlan(api, await plan(api, ['pve1']));
  assert.deepEqual(await rollbackMapping(api, 'iGPU'), ['deleted mapping iGPU']);
  assert.equal(state.mappings.has('iGPU'), false);
});

test('without Mapping.Modify the apply stops before writing and names the privilege', async () => {
  const { state, api } = lab({ '/': ['Sys.Audit'], '/mapping/pci': ['Mapping.Audit'] });
  await assert.rejects(
    applyMappingPlan(api, await plan(api, ['pve1'])),
    /token igpu@pve!split lacks Mapping.Modify on \/mapping\/pci/,
  );
  assert.equal(state.mappings.size, 0);
});
