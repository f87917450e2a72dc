// The drain pre-flight, pure: selectors, what our drain does with each pod, and which
// PodDisruptionBudget blocks which host's turn and why.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type DrainFacts,
  drainPreflight,
  drainVerdict,
  neverSatisfied,
  selectorMatches,
} from '../../src/cluster/drain-preflight.ts';
import type { KubeObject } from '../../src/cluster/kube.ts';
import { budgetStatus } from '../../src/sim/kube/disruption.ts';

const RS = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', uid: 'rs-uid', controller: true };

function pod(
  name: string,
  node: string,
  extra: Partial<KubeObject['metadata']> = {},
  ready = true,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { app: 'web' }, ownerReferences: [RS], ...extra },
    spec: { nodeName: node },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

function pdb(
  spec: Record<string, unknown>,
  status: Record<string, unknown> | undefined,
  name = 'web-pdb',
): KubeObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace: 'default', generation: 1 },
    spec: { selector: { matchLabels: { app: 'web' } }, ...spec },
    ...(status ? { status: { observedGeneration: 1, ...status } } : {}),
  };
}

const node = (name: string, unschedulable = false): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  spec: unschedulable ? { unschedulable: true } : {},
});

const TURNS = [
  { host: 'pve1', nodes: ['k3s-1'] },
  { host: 'pve2', nodes: ['k3s-2'] },
];

test('selectors: matchLabels and the four operators, as LabelSelectorAsSelector and Requirement.Matches', () => {
  const labels = { app: 'web', tier: 'front' };
  assert.equal(selectorMatches({ matchLabels: { app: 'web' } }, labels), true);
  assert.equal(selectorMatches({ matchLabels: { app: 'db' } }, labels), false);
  assert.equal(selectorMatches({}, labels), true, 'an empty selector picks every pod');
  assert.equal(selectorMatches(null, labels), false, 'a null selector picks none');
  const expr = (operator: string, values?: string[], key = 'tier') => ({
    matchExpressions: [{ key, operator, ...(values ? { values } : {}) }],
  });
  assert.equal(selectorMatches(expr('In', ['front', 'back']), labels), true);
  assert.equal(selectorMatches(expr('In', ['back']), labels), false);
  assert.equal(selectorMatches(expr('NotIn', ['back']), labels), true);
  assert.equal(selectorMatches(expr('NotIn', ['front']), labels), false);
  assert.equal(selectorMatches(expr('NotIn', ['x'], 'zone'), labels), true, 'NotIn matches a missing label');
  assert.equal(selectorMatches(expr('Exists'), labels), true);
  assert.equal(selectorMatches(expr('Exists', undefined, 'zone'), labels), false);
  assert.equal(selectorMatches(expr('DoesNotExist', undefined, 'zone'), labels), true);
  assert.equal(selectorMatches(expr('DoesNotExist'), labels), false);
  assert.equal(selectorMatches(expr('Gt', ['1']), labels), false, 'an invalid operator picks nothing');
});

test('what our drain does with a pod: DaemonSet, mirror and finished pods stay; no owner refuses; owners without a controller are evicted', () => {
  assert.equal(drainVerdict(pod('a', 'k3s-1')), 'evict');
  assert.equal(
    drainVerdict(pod('a', 'k3s-1', { ownerReferences: [{ kind: 'DaemonSet', name: 'ds' }] })),
    'skip',
  );
  assert.equal(
    drainVerdict(
      pod('a', 'k3s-1', { ownerReferences: [], annotations: { 'kubernetes.io/config.mirror': 'x' } }),
    ),
    'skip',
  );
  assert.equal(
    drainVerdict({ ...pod('a', 'k3s-1', { ownerReferences: [] }), status: { phase: 'Succeeded' } }),
    'skip',
  );
  assert.equal(drainVerdict(pod('a', 'k3s-1', { ownerReferences: [] })), 'bare');
  assert.equal(
    drainVerdict(pod('a', 'k3s-1', { ownerReferences: [{ kind: 'Thing', name: 't' }] })),
    'uncontrolled',
  );
});

test('a budget that allows what the drain takes passes; disruptionsAllowed 0 fails naming host, node, pod and budget', () => {
  const pods = [pod('web-1', 'k3s-1'), pod('web-2', 'k3s-2'), pod('web-3', 'k3s-3')];
  const ok = drainPreflight(TURNS, {
    pods,
    budgets: [
      pdb(
        { maxUnavailable: 1 },
        { disruptionsAllowed: 1, currentHealthy: 3, desiredHealthy: 2, expectedPods: 3 },
      ),
    ],
  });
  assert.deepEqual(
    ok.map((c) => [c.id, c.status]),
    [
      ['rollout.pve1.drain', 'pass'],
      ['rollout.pve2.drain', 'pass'],
    ],
  );
  const [blocked] = drainPreflight(TURNS, {
    pods,
    budgets: [
      pdb(
        { minAvailable: 2 },
        { disruptionsAllowed: 0, currentHealthy: 2, desiredHealthy: 2, expectedPods: 3 },
      ),
    ],
  });
  assert.equal(blocked?.status, 'fail');
  assert.match(
    blocked?.evidence ?? '',
    /^host pve1 would block node k3s-1, pod default\/web-1, PodDisruptionBudget default\/web-pdb: disruptionsAllowed is 0 \(needs 2 healthy pods and has 2\)/,
  );
  assert.match(
    blocked?.fix ?? '',
    /raise the PodDisruptionBudget's maxUnavailable.*igpu-split cluster drain --node k3s-1 --yes/,
  );
});

test('a budget that can never be satisfied: maxUnavailable 0, 0%, minAvailable of every pod, 100%', () => {
  assert.match(
    neverSatisfied(pdb({ maxUnavailable: 0 }, undefined), 3) ?? '',
    /maxUnavailable 0 allows no eviction/,
  );
  assert.match(neverSatisfied(pdb({ maxUnavailable: '0%' }, undefined), 3) ?? '', /allows no eviction/);
  assert.equal(
    neverSatisfied(pdb({ maxUnavailable: '10%' }, undefined), 3),
    undefined,
    '10% of 3 rounds up to 1',
  );
  assert.match(neverSatisfied(pdb({ minAvailable: 3 }, undefined), 3) ?? '', /minAvailable 3 with 3 pods/);
  assert.match(neverSatisfied(pdb({ minAvailable: '100%' }, undefined), 3) ?? '', /allows no eviction/);
  assert.equal(neverSatisfied(pdb({ minAvailable: 2 }, undefined), 3), undefined);
  const [check] = drainPreflight(TURNS, {
    pods: [pod('web-1', 'k3s-1'), pod('web-2', 'k3s-2')],
    budgets: [
      pdb(
        { maxUnavailable: 0 },
        { disruptionsAllowed: 0, currentHealthy: 2, desiredHealthy: 2, expectedPods: 2 },
      ),
    ],
  });
  assert.equal(check?.status, 'fail');
  assert.match(
    check?.evidence ?? '',
    /pve1 would block .* it can never be satisfied \(maxUnavailable 0 allows no eviction\)/,
  );
});

test('a pod no controller owns fails its host; owners without a controller warn; DaemonSet and mirror pods are ignored', () => {
  const facts: DrainFacts = {
    pods: [
      pod('debug', 'k3s-1', { ownerReferences: [], labels: {} }),
      pod('plugin', 'k3s-2', { ownerReferences: [{ kind: 'DaemonSet', name: 'ds' }] }),
      pod('static', 'k3s-2', { ownerReferences: [], annotations: { 'kubernetes.io/config.mirror': 'x' } }),
    ],
    budgets: [
      pdb(
        { maxUnavailable: 0 },
        { disruptionsAllowed: 0, currentHealthy: 1, desiredHealthy: 1, expectedPods: 1 },
      ),
    ],
  };
  const [one, two] = drainPreflight(TURNS, facts);
  assert.equal(one?.status, 'fail');
  assert.match(
    one?.evidence ?? '',
    /node k3s-1, pod default\/debug: no controller owns it, so the drain refuses the node/,
  );
  assert.equal(two?.status, 'pass', 'the DaemonSet pod and the mirror pod stay: no budget is met');
  const [warned] = drainPreflight(TURNS, {
    pods: [pod('job', 'k3s-1', { ownerReferences: [{ kind: 'Workflow', name: 'w' }], labels: {} })],
    budgets: [],
  });
  assert.equal(warned?.status, 'warn');
  assert.match(
    warned?.evidence ?? '',
    /^host pve1: its drain meets node k3s-1, pod default\/job: .*nothing makes it again/,
  );
});

test('more evictions than allowed: wait when replacements have a node, fail when every other node is drained or cordoned', () => {
  const pods = [pod('web-1', 'k3s-1'), pod('web-2', 'k3s-1')];
  const budgets = [
    pdb(
      { maxUnavailable: 1 },
      { disruptionsAllowed: 1, currentHealthy: 2, desiredHealthy: 1, expectedPods: 2 },
    ),
  ];
  const [waits] = drainPreflight(TURNS, { pods, budgets, nodes: [node('k3s-1'), node('k3s-2')] });
  assert.equal(waits?.status, 'warn');
  assert.match(waits?.evidence ?? '', /evicts 2 of its pods and it allows 1 at once/);
  const [stuck] = drainPreflight(TURNS, { pods, budgets, nodes: [node('k3s-1'), node('k3s-2', true)] });
  assert.equal(stuck?.status, 'fail');
  assert.match(stuck?.evidence ?? '', /no node outside this turn can run their replacements/);
});

test('two budgets over one pod fail (the eviction API refuses it); a budget in another namespace does not count', () => {
  const pods = [pod('web-1', 'k3s-1')];
  const open = { disruptionsAllowed: 1, currentHealthy: 1, desiredHealthy: 0, expectedPods: 1 };
  const [two] = drainPreflight(TURNS, { pods, budgets: [pdb({}, open, 'a'), pdb({}, open, 'b')] });
  assert.equal(two?.status, 'fail');
  assert.match(two?.evidence ?? '', /default\/a and default\/b both cover it/);
  const elsewhere = { ...pdb({ maxUnavailable: 0 }, { ...open, disruptionsAllowed: 0 }) };
  elsewhere.metadata = { ...elsewhere.metadata, namespace: 'other' };
  assert.equal(drainPreflight(TURNS, { pods, budgets: [elsewhere] })[0]?.status, 'pass');
});

test('a budget the controller has not processed yet warns; a turn that drains nothing has no check', () => {
  const [check] = drainPreflight(TURNS, {
    pods: [pod('web-1', 'k3s-1'), pod('web-2', 'k3s-2')],
    budgets: [pdb({ minAvailable: 1 }, undefined)],
  });
  assert.equal(check?.status, 'warn');
  assert.match(check?.evidence ?? '', /status is not computed yet/);
  assert.deepEqual(drainPreflight([{ host: 'pve3', nodes: [] }], { pods: [], budgets: [] }), []);
});

test("the simulator's disruption controller: expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed", () => {
  const pods = [pod('web-1', 'k3s-1'), pod('web-2', 'k3s-2'), pod('web-3', 'k3s-3', {}, false)];
  const scale = new Map([['rs-uid', 3]]);
  assert.deepEqual(budgetStatus(pdb({ minAvailable: 2 }, undefined), pods, scale), {
    observedGeneration: 1,
    expectedPods: 3,
    desiredHealthy: 2,
    currentHealthy: 2,
    disruptionsAllowed: 0,
  });
  assert.equal(budgetStatus(pdb({ maxUnavailable: 2 }, undefined), pods, scale).disruptionsAllowed, 1);
  assert.equal(
    budgetStatus(pdb({ minAvailable: '50%' }, undefined), pods, scale).desiredHealthy,
    2,
    '50% of 3 rounds up',
  );
  // The controller's scale, not the pods left, after one is evicted: the budget stays held.
  assert.equal(
    budgetStatus(pdb({ maxUnavailable: 1 }, undefined), pods.slice(0, 1), scale).disruptionsAllowed,
    0,
  );
  assert.equal(
    budgetStatus(pdb({ minAvailable: 0 }, undefined), [], scale).disruptionsAllowed,
    0,
    'no pods: none allowed',
  );
});
