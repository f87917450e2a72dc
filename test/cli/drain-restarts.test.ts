// Every command that restarts a node VM drains its Kubernetes node first and uncordons it
// after (issue 15 item 6): vm apply and vm rollback on the demo lab, watched from the
// simulators — the node is cordoned and its pod evicted at the moment the VM shuts down.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DemoLab } from '../../src/demo/lab.ts';
import { K } from '../../src/sim/kube/controllers.ts';
import { runCli } from '../support/cli.ts';
import { withDemo } from '../support/demo.ts';

const POD = 'web-7d9c5-abcde';

/** Whether the simulator's node k3s-1 is cordoned (spec.unschedulable). */
function cordoned(demo: DemoLab): boolean {
  return (
    (demo.kube.store.get(K.Node, undefined, 'k3s-1')?.spec as { unschedulable?: boolean })?.unschedulable ===
    true
  );
}

/** A pod a ReplicaSet owns, on k3s-1: a drain evicts it. */
function podOnK3s(demo: DemoLab): void {
  demo.kube.store.update(K.Pod, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: POD,
      namespace: 'default',
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c5', uid: 'u-1' }],
    },
    spec: { nodeName: 'k3s-1', containers: [{ name: 'web', image: 'nginx' }] },
    status: { phase: 'Running' },
  });
}

/** What the cluster looked like each time a VM began to shut down or stop. */
function watchStops(demo: DemoLab): { vmid: number; cordoned: boolean; pod: boolean }[] {
  const seen: { vmid: number; cordoned: boolean; pod: boolean }[] = [];
  const stop = demo.proxmox.stop.bind(demo.proxmox);
  demo.proxmox.stop = (vmid, how) => {
    seen.push({
      vmid,
      cordoned: cordoned(demo),
      pod: demo.kube.store.get(K.Pod, 'default', POD) !== undefined,
    });
    stop(vmid, how);
  };
  return seen;
}

test('vm apply and vm rollback drain k3s-1 before VM 101 stops and uncordon it once it runs again', async () => {
  await withDemo(async (demo) => {
    const mapping = await runCli(['mapping', 'apply', '--lab', demo.labFile, '--yes']);
    assert.equal(mapping.code, 0, mapping.stderr);
    podOnK3s(demo);
    const stops = watchStops(demo);
    const apply = await runCli(['vm', 'apply', '--lab', demo.labFile, '--vm', '101', '--yes']);
    assert.equal(apply.code, 0, apply.stderr);
    assert.deepEqual(
      stops,
      [{ vmid: 101, cordoned: true, pod: false }],
      'cordoned and evicted before the stop',
    );
    assert.match(apply.stdout, /drained k3s-1[\s\S]*uncordoned k3s-1/);
    assert.equal(cordoned(demo), false, 'uncordoned after');

    podOnK3s(demo);
    const rollback = await runCli(['vm', 'rollback', '--lab', demo.labFile, '--vm', '101', '--yes']);
    assert.equal(rollback.code, 0, rollback.stderr);
    assert.deepEqual(stops.slice(1), [{ vmid: 101, cordoned: true, pod: false }]);
    assert.match(rollback.stdout, /drained k3s-1[\s\S]*uncordoned k3s-1/);
    assert.equal(cordoned(demo), false);
  });
});

test('vm apply --no-drain restarts the VM with its node left schedulable and its pod in place', async () => {
  await withDemo(async (demo) => {
    const mapping = await runCli(['mapping', 'apply', '--lab', demo.labFile, '--yes']);
    assert.equal(mapping.code, 0, mapping.stderr);
    podOnK3s(demo);
    const stops = watchStops(demo);
    const apply = await runCli(['vm', 'apply', '--lab', demo.labFile, '--vm', '101', '--yes', '--no-drain']);
    assert.equal(apply.code, 0, apply.stderr);
    assert.deepEqual(stops, [{ vmid: 101, cordoned: false, pod: true }]);
    assert.doesNotMatch(apply.stdout, /drained/);
  });
});

test('a node someone cordoned before vm apply stays cordoned after it', async () => {
  await withDemo(async (demo) => {
    const mapping = await runCli(['mapping', 'apply', '--lab', demo.labFile, '--yes']);
    assert.equal(mapping.code, 0, mapping.stderr);
    await demo.connections.kube.setUnschedulable('k3s-1', true);
    const apply = await runCli(['vm', 'apply', '--lab', demo.labFile, '--vm', '101', '--yes']);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /k3s-1 was cordoned before: left so/);
    assert.equal(cordoned(demo), true);
  });
});

test('without a terminal, a VM that takes 3 s to stop is a "still waiting" line on stderr with elapsed and limit', async () => {
  await withDemo(async (demo) => {
    const mapping = await runCli(['mapping', 'apply', '--lab', demo.labFile, '--yes']);
    assert.equal(mapping.code, 0, mapping.stderr);
    // HA-managed: the shutdown task only files the request; the VM stops 3 s later.
    demo.proxmox.vm(101).haStopDelayMs = 3_000;
    const apply = await runCli(['vm', 'apply', '--lab', demo.labFile, '--vm', '101', '--yes', '--no-drain']);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(
      apply.stderr,
      /^igpu-split: https:\/\/127\.0\.0\.1:\d+: still waiting for VM 101 on pve1 to be stopped \(\d+ s so far; gives up after 210 s\)$/m,
    );
  });
});
