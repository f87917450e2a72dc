// The drain pre-flight through the demo lab and its simulated API server: a
// PodDisruptionBudget that allows no eviction refuses the plan naming the host whose turn
// would block; once it is relaxed (the simulated disruption controller recomputes its
// status), the plan passes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planView } from '../../src/cli/json.ts';
import { renderPlanSections } from '../../src/cli/lab-run.ts';
import { planExitCode, planLab, planRefusal, planSections } from '../../src/engine/plan.ts';
import { K } from '../../src/sim/kube/controllers.ts';
import { withDemo } from '../support/demo.ts';

const RS = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', uid: 'rs-uid', controller: true };

test('a budget that allows no eviction refuses the plan naming the host; relaxed, the plan passes', async () => {
  await withDemo(async (demo) => {
    const { store } = demo.kube;
    for (const [name, node] of [
      ['web-1', 'k3s-1'],
      ['web-2', 'k3s-2'],
    ] as const)
      store.update(K.Pod, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default', labels: { app: 'web' }, ownerReferences: [RS] },
        spec: { nodeName: node, containers: [{ name: 'web', image: 'nginx:1.27' }] },
        status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
      });
    const budget = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'web-pdb', namespace: 'default' },
      spec: { maxUnavailable: 0, selector: { matchLabels: { app: 'web' } } },
    };
    store.update(K.PodDisruptionBudget, budget);
    assert.deepEqual(
      (store.get(K.PodDisruptionBudget, 'default', 'web-pdb')?.status as { disruptionsAllowed?: number })
        ?.disruptionsAllowed,
      0,
      'the simulated disruption controller wrote the status',
    );

    const blocked = await planLab(demo.lab, demo.connections);
    const k3s1 = blocked.drains.find((c) => c.id === 'rollout.pve1.drain');
    assert.equal(k3s1?.status, 'fail');
    assert.match(
      planRefusal(blocked) ?? '',
      /^host pve1 would block node k3s-1, pod default\/web-1, PodDisruptionBudget default\/web-pdb: it can never be satisfied \(maxUnavailable 0 allows no eviction\)/,
    );
    assert.match(
      k3s1?.fix ?? '',
      /raise the PodDisruptionBudget's maxUnavailable.*kubectl delete pod -n default web-1/,
    );
    assert.equal(blocked.drains.find((c) => c.id === 'rollout.pve4.drain')?.status, 'fail');
    assert.equal(planExitCode(blocked), 1);
    const text = renderPlanSections(planSections(blocked));
    assert.match(text, /rollout: the drains of each host’s turn\n\n {2}Checks\n.*rollout\.pve1\.drain/);
    const view = await planView(blocked);
    assert.ok(view.sections.some((s) => s.layer === 'rollout' && s.checks.length === blocked.drains.length));
    assert.match(view.refused ?? '', /host pve1 would block/);

    store.update(K.PodDisruptionBudget, { ...budget, spec: { ...budget.spec, maxUnavailable: 1 } });
    const relaxed = await planLab(demo.lab, demo.connections);
    assert.ok(relaxed.drains.length >= 2, 'every turn that drains has its check');
    assert.deepEqual(
      relaxed.drains.filter((c) => c.status !== 'pass'),
      [],
      'each turn evicts one pod and the budget allows one',
    );
    assert.equal(planRefusal(relaxed), undefined);
  });
});
