// The rollout's budget and schedule (src/engine/rollout): what each host's turn takes down,
// the budget in nodes, the refusals (one line naming the host) and the waves.

import assert from 'node:assert/strict';
import test from 'node:test';
import {
  budgetInNodes,
  disruptionOf,
  type HostDisruption,
  nodeOfVm,
  quorumTolerance,
  type RolloutNode,
} from '../../src/engine/rollout/budget.ts';
import { fewestWaves, type RolloutConstraints, scheduleRollout } from '../../src/engine/rollout/schedule.ts';

const NODES: RolloutNode[] = [
  { name: 'cp-1', systemUUID: 'aaaaaaaa-0000-0000-0000-000000000001', member: true },
  { name: 'k3s-1', systemUUID: 'aaaaaaaa-0000-0000-0000-000000000002', member: false },
  { name: 'k3s-2', systemUUID: 'aaaaaaaa-0000-0000-0000-000000000003', member: false },
];

test('a VM is its Kubernetes node by SMBIOS uuid, whatever the letter case', () => {
  const vm = { vmid: 100, running: true, uuid: 'AAAAAAAA-0000-0000-0000-000000000002', lab: false };
  assert.equal(nodeOfVm(vm, NODES)?.name, 'k3s-1');
  assert.equal(nodeOfVm({ ...vm, uuid: undefined }, NODES), undefined);
  assert.equal(nodeOfVm({ ...vm, uuid: 'bbbbbbbb-0000-0000-0000-000000000002' }, NODES), undefined);
});

test('a reboot stops every running VM on the host, the lab’s or not; otherwise only the lab’s restarts', () => {
  const vms = [
    { vmid: 100, running: true, uuid: NODES[0]?.systemUUID, lab: false },
    { vmid: 101, running: true, uuid: NODES[1]?.systemUUID, lab: true },
    { vmid: 102, running: false, uuid: NODES[2]?.systemUUID, lab: false },
    { vmid: 103, running: true, lab: false },
  ];
  assert.deepEqual(disruptionOf({ node: 'pve1', vms, reboots: true, restarts: [] }, NODES), {
    node: 'pve1',
    vms: [100, 101, 103],
    nodes: ['cp-1', 'k3s-1'],
    members: ['cp-1'],
  });
  assert.deepEqual(disruptionOf({ node: 'pve1', vms, reboots: false, restarts: [101] }, NODES).nodes, [
    'k3s-1',
  ]);
});

test('the budget: a count, a percentage rounded up as a DaemonSet’s, or by default the most nodes on one host', () => {
  const d = (n: number): HostDisruption => ({
    node: `h${n}`,
    vms: [],
    nodes: Array.from({ length: n }, (_, i) => `n${i}`),
    members: [],
  });
  assert.equal(budgetInNodes(2, 10, []), 2);
  assert.equal(budgetInNodes('25%', 10, []), 3);
  assert.equal(budgetInNodes('10%', 150, []), 15);
  assert.equal(budgetInNodes(undefined, 10, [d(1), d(3), d(2)]), 3);
  assert.equal(budgetInNodes(undefined, 10, []), 1);
  assert.deepEqual([1, 2, 3, 4, 5].map(quorumTolerance), [0, 0, 1, 1, 2]);
});

const host = (node: string, nodes: string[], members: string[] = []): HostDisruption => ({
  node,
  vms: [],
  nodes,
  members,
});
const constraints = (over: Partial<RolloutConstraints> = {}): RolloutConstraints => ({
  budget: 2,
  budgetFrom: '2',
  clusterNodes: 9,
  members: 3,
  allowApiOutage: false,
  alone: new Set(),
  maxHosts: 10,
  ...over,
});

test('waves hold the budget and quorum; hosts that serve an API go alone', () => {
  const hosts = [
    host('pve1', ['cp-1', 'w1'], ['cp-1']),
    host('pve2', ['cp-2'], ['cp-2']),
    host('pve3', ['w2']),
    host('pve4', ['cp-3'], ['cp-3']),
    host('pve5', []),
  ];
  const plan = scheduleRollout(hosts, constraints());
  assert.deepEqual(plan.refusals, []);
  assert.equal(plan.tolerance, 1);
  assert.deepEqual(plan.waves, [['pve1', 'pve5'], ['pve2', 'pve3'], ['pve4']]);
  for (const wave of plan.waves) {
    const inWave = hosts.filter((h) => wave.includes(h.node));
    assert.ok(inWave.reduce((s, h) => s + h.nodes.length, 0) <= 2);
    assert.ok(inWave.reduce((s, h) => s + h.members.length, 0) <= 1);
  }
  const alone = scheduleRollout(hosts, constraints({ alone: new Set(['pve3']) }));
  assert.ok(alone.waves.some((w) => w.length === 1 && w[0] === 'pve3'));
  assert.deepEqual(scheduleRollout(hosts, constraints({ maxHosts: 1 })).waves.length, 5);
  assert.equal(fewestWaves(hosts, constraints()), 3);
});

test('refusals: one line naming the host, its nodes and what would let it roll', () => {
  const big = scheduleRollout([host('pve1', ['a', 'b', 'c'])], constraints());
  assert.equal(big.refusals[0]?.host, 'pve1');
  assert.match(
    big.refusals[0]?.reason ?? '',
    /^host pve1 takes 3 nodes down at once \(a, b, c\), more than maxUnavailable 2$/,
  );
  assert.match(big.refusals[0]?.fix ?? '', /maxUnavailable to 3 or more/);
  const quorum = scheduleRollout([host('pve1', ['cp-1', 'cp-2'], ['cp-1', 'cp-2'])], constraints());
  assert.match(
    quorum.refusals[0]?.reason ?? '',
    /carries 2 of the cluster's 3 etcd members \(cp-1, cp-2\): its turn would lose quorum, which tolerates 1 down/,
  );
  const single = [host('pve1', ['cp-1'], ['cp-1'])];
  assert.match(
    scheduleRollout(single, constraints({ members: 1 })).refusals[0]?.fix ?? '',
    /--allow-api-outage/,
  );
  assert.deepEqual(scheduleRollout(single, constraints({ members: 1, allowApiOutage: true })).waves, [
    ['pve1'],
  ]);
  const zero = scheduleRollout(single, constraints({ budget: 0, budgetFrom: '0' }));
  assert.equal(zero.refusals[0]?.host, undefined);
  assert.match(zero.refusals[0]?.reason ?? '', /maxUnavailable 0 lets no node go down/);
  const many = scheduleRollout(single, constraints({ budget: 12, budgetFrom: '12' }));
  assert.match(many.refusals[0]?.reason ?? '', /more than the cluster's 9 nodes/);
  for (const r of [big, quorum, zero, many].flatMap((s) => s.refusals))
    assert.ok(!`${r.reason}${r.fix}`.includes('\n'));
});

test('hosts that roll alone: the one serving proxmox.url, and the one carrying the API server’s VM', async () => {
  const { hostOfAddress, servingHosts } = await import('../../src/engine/rollout/plan.ts');
  assert.equal(hostOfAddress('ssh://root@10.0.0.5:22'), '10.0.0.5');
  assert.equal(hostOfAddress('root@PVE1'), 'pve1');
  assert.equal(hostOfAddress('https://[fd00::5]:8006/'), 'fd00::5');
  const lab = {
    proxmox: { url: 'https://10.0.0.1:8006' },
    hosts: [{ node: 'pve1', ssh: 'root@10.0.0.1' }, { node: 'pve2', ssh: 'root@10.0.0.2' }, { node: 'pve3' }],
    vms: [
      { vmid: 101, host: 'pve2', os: 'ubuntu', kubernetesNode: 'k3s-1', guest: 'root@10.0.1.1' },
      { vmid: 102, host: 'pve3', os: 'talos', kubernetesNode: 'talos-1', talos: { node: '10.0.1.2' } },
    ],
  } as never;
  assert.deepEqual([...servingHosts(lab, 'https://10.0.1.2:6443')].sort(), ['pve1', 'pve3']);
  assert.deepEqual([...servingHosts(lab, 'https://10.0.1.1:6443')].sort(), ['pve1', 'pve2']);
  assert.deepEqual([...servingHosts(lab, 'https://k8s.example:6443')], ['pve1']);
});

test('a cluster with no etcd member labelled: quorum judges nothing, the budget alone shapes the waves', () => {
  const plan = scheduleRollout([host('pve1', ['a']), host('pve2', ['b'])], constraints({ members: 0 }));
  assert.deepEqual(plan.refusals, []);
  assert.deepEqual(plan.waves, [['pve1', 'pve2']]);
});
