// The one line the questions before a change show: what it reboots, restarts and drains,
// read from the steps' `disturbs` and named by host, VM and Kubernetes node; and which nodes
// the engine drains (not one a Talos upgrade drains itself).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Step } from '../../src/core/model.ts';
import {
  disturbanceSummary,
  hostDrains,
  labDisturbances,
  vmDisturbances,
} from '../../src/engine/disturbances.ts';
import { Journal } from '../../src/engine/journal.ts';
import { type HostPart, type LabPlan, planLab } from '../../src/engine/plan.ts';
import { applyStages } from '../../src/engine/stages/index.ts';
import { withDemo } from '../support/demo.ts';

const step = (...disturbs: Step['disturbs']): Step => ({ id: 's', target: 't', description: 'd', disturbs });

test('the summary counts with the right plural, names each, and keeps a fixed order', () => {
  assert.equal(
    disturbanceSummary({
      'node-drain': ['k3s-1', 'talos-1'],
      'vm-restart': [101, 102],
      'host-reboot': ['pve1', 'pve2'],
    }),
    '2 host reboots (pve1, pve2), 2 VM restarts (101, 102), 2 node drains (k3s-1, talos-1)',
  );
  assert.equal(
    disturbanceSummary({ 'host-reboot': ['pve1'], 'guest-reboot': [101, 101] }),
    '1 host reboot (pve1), 1 guest reboot (101)',
  );
  assert.equal(disturbanceSummary({}), 'no reboot, restart or drain');
});

test('a VM change names its restart and its node drain; a VM with no Kubernetes node needs no drain', () => {
  assert.deepEqual(
    disturbanceSummary(
      vmDisturbances([
        { vmid: 101, steps: [step(), step('node-drain', 'vm-restart')], kubernetesNode: 'k3s-1' },
        { vmid: 103, steps: [step('node-drain', 'vm-restart')] },
        { vmid: 104, steps: [step()], kubernetesNode: 'idle-1' },
      ]),
    ),
    '2 VM restarts (101, 103), 1 node drain (k3s-1)',
  );
});

test('the demo lab plan: both hosts reboot, both VMs restart, both guests reboot, both GPU nodes drain', async () => {
  await withDemo(async (demo) => {
    const plan = await planLab(demo.lab, demo.connections);
    assert.equal(
      disturbanceSummary(labDisturbances(demo.lab, plan)),
      '3 host reboots (pve1, pve2, pve4), 3 VM restarts (101, 102, 103), 3 guest reboots (101, 102, 103), 3 node drains (k3s-1, talos-1, k3s-2)',
    );
  });
});

test('without talosctl the Talos change is the user’s: the question names no reboot or drain for it', async () => {
  await withDemo(async (demo) => {
    const plan = await planLab(demo.lab, { ...demo.connections, talosctl: undefined });
    const guest = plan.hosts.flatMap((h) => h.guests).find((g) => g.vm.vmid === 102);
    assert.equal(guest?.plan?.manual, true);
    const line = disturbanceSummary(labDisturbances(demo.lab, plan));
    // talos-1 is still drained: its host pve2 reboots.
    assert.equal(
      line,
      '3 host reboots (pve1, pve2, pve4), 3 VM restarts (101, 102, 103), 2 guest reboots (101, 103), 3 node drains (k3s-1, talos-1, k3s-2)',
    );
  });
});

// A Talos upgrade drains its node itself (talosctl upgrade: knowledge/pins.ts TALOS_UPGRADE_DRAIN).
const talosUpgrade = step('guest-drain', 'guest-reboot');

test('a Talos upgrade names its drain as Talos’s; with a VM restart beside it the drain is the engine’s', () => {
  assert.equal(
    disturbanceSummary(
      vmDisturbances([
        { vmid: 102, steps: [step(), talosUpgrade], kubernetesNode: 'talos-1' },
        { vmid: 101, steps: [step('guest-reboot')], kubernetesNode: 'k3s-1' },
      ]),
    ),
    '2 guest reboots (102, 101), 1 node drain (k3s-1), 1 node drain by Talos (talos-1)',
  );
  assert.equal(
    disturbanceSummary(
      vmDisturbances([
        { vmid: 102, steps: [step('node-drain', 'vm-restart'), talosUpgrade], kubernetesNode: 'talos-1' },
      ]),
    ),
    '1 VM restart (102), 1 guest reboot (102), 1 node drain (talos-1)',
  );
});

/** The demo lab's plan with host pve2 (talos-1's) left with nothing but the Talos upgrade. */
function onlyTalosOnPve2(plan: LabPlan): LabPlan {
  return {
    ...plan,
    vms: { ...plan.vms, changes: plan.vms.changes.filter((c) => c.vmid !== 102) },
    hosts: plan.hosts.map((part) =>
      part.node === 'pve2' && part.host ? { ...part, host: { ...part.host, steps: [] } } : part,
    ),
  };
}

test('the engine never drains a node Talos drains in the same step, and still drains it when its host reboots', async () => {
  await withDemo(async (demo) => {
    const dir = await mkdtemp(join(tmpdir(), 'igpu-drains-'));
    try {
      const journal = new Journal(join(dir, 'igpu-split.yaml'));
      await journal.lock(false);
      await journal.start(false);
      const full = await planLab(demo.lab, demo.connections);
      const talos = full.hosts.flatMap((h) => h.guests).find((g) => g.vm.vmid === 102);
      assert.deepEqual(talos?.plan?.steps.at(-1)?.disturbs, ['guest-drain', 'guest-reboot']);
      const stageIds = (plan: LabPlan) =>
        applyStages(demo.lab, plan, demo.connections, journal).map((s) => s.id);
      const pve2 = (plan: LabPlan) => plan.hosts.find((h) => h.node === 'pve2') as HostPart;

      // pve2 reboots and VM 102 restarts: the engine drains talos-1 first (and Talos again in its upgrade).
      assert.deepEqual(hostDrains(demo.lab, full, pve2(full)), { engine: ['talos-1'], byGuest: [] });
      assert.ok(stageIds(full).includes('pve2/drain'));

      // Only the Talos upgrade on pve2: no drain stage of the engine's for talos-1, and the question says who drains it.
      const only = onlyTalosOnPve2(full);
      assert.deepEqual(hostDrains(demo.lab, only, pve2(only)), { engine: [], byGuest: ['talos-1'] });
      const ids = stageIds(only);
      assert.ok(ids.includes('pve2/guest/102'), ids.join(' '));
      assert.equal(ids.includes('pve2/drain') || ids.includes('pve2/uncordon'), false, ids.join(' '));
      assert.ok(ids.includes('pve1/drain'), 'the other hosts still drain');
      assert.equal(
        disturbanceSummary(labDisturbances(demo.lab, only)),
        '2 host reboots (pve1, pve4), 2 VM restarts (101, 103), 3 guest reboots (101, 102, 103), 2 node drains (k3s-1, k3s-2), 1 node drain by Talos (talos-1)',
      );
    } finally {
      await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    }
  });
});
