// The one line the questions before a change show: what it reboots, restarts and drains,
// read from the steps' `disturbs` and named by host, VM and Kubernetes node.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Step } from '../../src/core/model.ts';
import { disturbanceSummary, labDisturbances, vmDisturbances } from '../../src/engine/disturbances.ts';
import { planLab } from '../../src/engine/plan.ts';
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
