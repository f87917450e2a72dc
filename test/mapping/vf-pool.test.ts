// The VF pool mapping against the simulator: one entry per VF in order with mdev off, the
// PF never pooled, VFs not there yet added when they appear, the user's entries kept, and
// a mixed lab (a GVT-g host and an SR-IOV host) ending with two mappings.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { plannedVfs } from '../../src/config/derived.ts';
import { applyMappingPlan, rollbackMapping } from '../../src/mapping/apply.ts';
import { gatherMappingFacts, planMapping } from '../../src/mapping/plan.ts';
import { gatherVfPoolFacts, planVfPool, syncVfPool } from '../../src/mapping/vf-pool.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { tokenApi, UHD630 } from '../support/simulator.ts';

const N100 = {
  bdf: '0000:00:02.0',
  vendorDevice: '8086:46d1',
  subsystem: '8086:7270',
  iommuGroup: 0,
  apertureMiB: 256,
  graphicsVer: 12,
  totalVfs: 7,
};
const SRIOV = { node: 'pve2', pfBdf: '0000:00:02.0', vfs: 3 };

function lab() {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  state.addNode('pve1', { ...UHD630 });
  state.addNode('pve2', { ...N100 });
  state.addToken('igpu@pve!split', 's', {
    '/': ['Sys.Audit'],
    '/mapping/pci': ['Mapping.Modify', 'Mapping.Audit', 'Mapping.Use'],
  });
  return { state, api: tokenApi(state) };
}

test('plannedVfs: auto is one per VM, capped by sriov_totalvfs; more VMs than VFs is said in one line', () => {
  assert.deepEqual(plannedVfs('auto', 3, 7), { vfs: 3 });
  assert.deepEqual(plannedVfs('auto', 0, 7), { vfs: 1 });
  assert.deepEqual(plannedVfs(5, 2, 7), { vfs: 5 });
  assert.deepEqual(plannedVfs(7, 2, 4), { vfs: 4 }, 'the host offers fewer than asked');
  const auto = plannedVfs('auto', 9, 7, 'pve2');
  assert.equal(auto.vfs, 7);
  assert.equal(
    auto.short,
    'pve2: 9 node VMs but 7 virtual functions — one VF per VM; move 2 of them to another host (this iGPU offers at most 7 VFs, sriov_totalvfs)',
  );
  assert.match(plannedVfs(2, 3, 7, 'pve2').short ?? '', /; set vfs: 3 on host pve2 \(or vfs: auto\)$/);
});

test('the pool has one entry per VF in order, mdev off; created once the VFs exist; then nothing to do', async () => {
  const { state, api } = lab();
  const before = planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [SRIOV]));
  assert.deepEqual(before.steps, [], 'no VF listed yet: nothing to create');
  assert.match(before.checks[0]?.evidence ?? '', /Proxmox lists 0 of the 3 planned VFs/);

  state.setVirtualFunctions('pve2', 3);
  const plan = planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [SRIOV]));
  assert.deepEqual(plan.map, [
    'node=pve2,path=0000:00:02.1,id=8086:46d1,subsystem-id=8086:7270,iommugroup=1,description=igpu-split',
    'node=pve2,path=0000:00:02.2,id=8086:46d1,subsystem-id=8086:7270,iommugroup=2,description=igpu-split',
    'node=pve2,path=0000:00:02.3,id=8086:46d1,subsystem-id=8086:7270,iommugroup=3,description=igpu-split',
  ]);
  assert.match(
    plan.steps[0]?.command ?? '',
    /^pvesh create \/cluster\/mapping\/pci --id iGPU-VF --mdev 0 --map/,
  );
  await applyMappingPlan(api, plan);
  assert.equal(state.mappings.get('iGPU-VF')?.mdev, false);
  assert.deepEqual(state.mappingChecks('iGPU-VF', 'pve2'), []);
  assert.deepEqual(planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [SRIOV])).steps, []);
});

test('VFs that appear later (the host reboot) are added by syncVfPool; fewer VFs remove ours', async () => {
  const { state, api } = lab();
  state.setVirtualFunctions('pve2', 1);
  await applyMappingPlan(api, planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [SRIOV])));
  state.setVirtualFunctions('pve2', 3);
  const synced = await syncVfPool(api, 'iGPU-VF', SRIOV);
  assert.equal(synced.changed, true);
  assert.equal(state.mappings.get('iGPU-VF')?.map.length, 3);
  assert.equal((await syncVfPool(api, 'iGPU-VF', SRIOV)).changed, false);
  const fewer = planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [{ ...SRIOV, vfs: 2 }]));
  assert.match(fewer.steps[0]?.diff ?? '', /^- node=pve2,path=0000:00:02\.3,/);
});

test('a pool entry naming the physical function is refused with the fix; nothing is written', async () => {
  const { state, api } = lab();
  state.setVirtualFunctions('pve2', 3);
  state.mappings.set('iGPU-VF', {
    mdev: false,
    map: ['node=pve2,path=0000:00:02.0,id=8086:46d1,subsystem-id=8086:7270,iommugroup=0'],
  });
  const plan = planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [SRIOV]));
  const pf = plan.checks.find((c) => c.id === 'mapping.pve2.pf');
  assert.equal(pf?.status, 'fail');
  assert.match(
    pf?.evidence ?? '',
    /^mapping iGPU-VF on pve2 has an entry for the physical function 0000:00:02\.0/,
  );
  assert.match(pf?.fix ?? '', /remove that entry in Datacenter → Resource Mappings → iGPU-VF/);
  assert.equal(plan.refused, pf?.evidence);
  await assert.rejects(
    applyMappingPlan(api, plan),
    /mapping iGPU-VF cannot be applied: mapping iGPU-VF on pve2/,
  );
  assert.equal(state.mappings.get('iGPU-VF')?.map.length, 1, 'nothing written');
});

test("the user's VF entries are kept; a pool marked mdev=1 is set to mdev=0", async () => {
  const { state, api } = lab();
  state.setVirtualFunctions('pve2', 3);
  const mine = 'node=pve2,path=0000:00:02.3,id=8086:46d1,subsystem-id=8086:7270,iommugroup=3';
  state.mappings.set('iGPU-VF', { mdev: true, map: [mine] });
  const plan = planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [{ ...SRIOV, vfs: 2 }]));
  assert.equal(plan.setMdev, true);
  assert.equal(plan.map[0], mine);
  assert.match(plan.steps[0]?.command ?? '', /^pvesh set \/cluster\/mapping\/pci\/iGPU-VF --mdev 0 /);
  await applyMappingPlan(api, plan);
  assert.equal(state.mappings.get('iGPU-VF')?.mdev, false);
  assert.deepEqual(state.mappingChecks('iGPU-VF', 'pve2'), []);
});

test('a mixed lab gets two mappings: GVT-g (mdev=1) for pve1, the VF pool (mdev=0) for pve2; rollback exact', async () => {
  const { state, api } = lab();
  state.setVirtualFunctions('pve2', 2);
  await applyMappingPlan(api, planMapping(await gatherMappingFacts(api, 'iGPU', ['pve1'])));
  await applyMappingPlan(api, planVfPool(await gatherVfPoolFacts(api, 'iGPU-VF', [{ ...SRIOV, vfs: 2 }])));
  assert.deepEqual(
    [...state.mappings].map(([id, m]) => [id, m.mdev, m.map.map((e) => e.split(',').slice(0, 2).join(','))]),
    [
      ['iGPU', true, ['node=pve1,path=0000:00:02.0']],
      ['iGPU-VF', false, ['node=pve2,path=0000:00:02.1', 'node=pve2,path=0000:00:02.2']],
    ],
  );
  assert.deepEqual(await rollbackMapping(api, 'iGPU-VF'), ['deleted mapping iGPU-VF']);
  assert.deepEqual([...state.mappings.keys()], ['iGPU']);
});
