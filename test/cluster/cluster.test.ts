// The cluster layer against the project's Kubernetes API server (over HTTPS, through
// @kubernetes/client-node): plan → apply → verify with smoke pods → second plan empty →
// rollback; Pod Security on Talos; drain with a PodDisruptionBudget; and the bad cases
// (no kubeconfig, unreachable, RBAC, CRD missing, node not found, a smoke pod that stays
// Pending). kubectl, pointed at the same server, checks it speaks the protocol.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { applyClusterPlan, drainNode, rollbackCluster, uncordonNode } from '../../src/cluster/apply.ts';
import { openKube } from '../../src/cluster/kube.ts';
import { type GpuNode, gatherClusterFacts, planCluster } from '../../src/cluster/plan.ts';
import { verifyCluster } from '../../src/cluster/verify.ts';
import { KubernetesSchema } from '../../src/config/lab.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { GPU_PLUGIN } from '../../src/knowledge/pins.ts';
import {
  type KubeSimulatorOptions,
  type RunningKubeSimulator,
  startKubeSimulator,
} from '../../src/sim/kube/server.ts';

const run = promisify(execFile);
let dir: string;
const sims: RunningKubeSimulator[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-kube-'));
});
after(async () => {
  for (const sim of sims) await sim.close();
  await rm(dir, { recursive: true, force: true });
});

const NODES: KubeSimulatorOptions['nodes'] = [
  { name: 'k3s-1', gpus: 1 },
  { name: 'talos-1', gpus: 1 },
  { name: 'cp-1' },
];
const GPU_NODES: GpuNode[] = [
  { name: 'k3s-1', vgpus: 1 },
  { name: 'talos-1', vgpus: 1 },
];

async function cluster(options: Partial<KubeSimulatorOptions> = {}) {
  const sim = await startKubeSimulator({ nodes: NODES, ...options });
  sims.push(sim);
  const file = join(dir, `kubeconfig-${sims.length}`);
  await writeFile(file, sim.kubeconfig);
  return { sim, file, kube: openKube({ kubeconfig: file }) };
}

async function fails(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    return true;
  });
}

const fast = { pollMs: 5, timeoutMs: 2_000 };

test('plan → apply → verify (smoke pods) → plan empty → rollback leaves nothing of ours', async () => {
  const { sim, kube } = await cluster({ vainfo: true });
  const settings = KubernetesSchema.parse({
    plugin: { sharedDevNum: 2 },
    smokeImage: 'jellyfin/jellyfin:10.10',
  });
  const plan = planCluster(await gatherClusterFacts(kube, settings, GPU_NODES), settings, GPU_NODES);
  assert.deepEqual(
    plan.steps.map((s) => s.id),
    [
      'cluster/namespace/igpu-split',
      'cluster/daemonset/intel-gpu-plugin',
      'cluster/node/k3s-1/labels',
      'cluster/node/talos-1/labels',
    ],
  );
  await applyClusterPlan(kube, plan);
  const checks = await verifyCluster(kube, settings, GPU_NODES, fast);
  assert.deepEqual(
    checks.map((c) => `${c.id} ${c.status}`),
    [
      'cluster.k3s-1.plugin pass',
      'cluster.k3s-1.allocatable pass',
      'cluster.k3s-1.smoke pass',
      'cluster.talos-1.plugin pass',
      'cluster.talos-1.allocatable pass',
      'cluster.talos-1.smoke pass',
    ],
  );
  assert.match(checks[1]?.evidence ?? '', /gpu\.intel\.com\/i915: 2 \(1 vGPU × 2\)/);
  assert.match(
    checks[2]?.evidence ?? '',
    /^VA-API profiles listed: .* got renderD128 and vainfo lists 3 profiles \(Intel iHD driver .*\): the vGPU renders$/,
  );
  assert.deepEqual(
    sim.store
      .list({ ...(await import('../../src/sim/kube/controllers.ts')).K.Pod }, 'igpu-split')
      .filter((p) => p.metadata.name.startsWith('igpu-split-smoke')),
    [],
    'smoke pods deleted',
  );
  const again = planCluster(await gatherClusterFacts(kube, settings, GPU_NODES), settings, GPU_NODES);
  assert.deepEqual(again.steps, []);
  const done = await rollbackCluster(kube, settings, GPU_NODES);
  assert.deepEqual(done, [
    "released igpu-split's labels on node k3s-1",
    "released igpu-split's labels on node talos-1",
    'deleted DaemonSet intel-gpu-plugin',
    'deleted Namespace igpu-split',
  ]);
  const node = await kube.get('v1', 'Node', 'k3s-1');
  assert.equal(node?.metadata.labels?.['intel.feature.node.kubernetes.io/gpu'], undefined);
  assert.equal(node?.metadata.labels?.['kubernetes.io/hostname'], 'k3s-1', 'labels that are not ours stay');
  const allocatable = (node?.status as { allocatable?: Record<string, string> } | undefined)?.allocatable;
  assert.equal(allocatable?.['gpu.intel.com/i915'], undefined);
});

test("Talos enforces baseline: our namespace allows privileged pods; the user's own namespace is never taken over", async () => {
  const { kube } = await cluster({ defaultPodSecurity: 'baseline' });
  const settings = KubernetesSchema.parse({});
  await applyClusterPlan(
    kube,
    planCluster(await gatherClusterFacts(kube, settings, GPU_NODES), settings, GPU_NODES),
  );
  assert.ok((await verifyCluster(kube, settings, GPU_NODES, fast)).every((c) => c.status === 'pass'));

  // A namespace the user made: used as it is, with a warning; pods refused until it allows them.
  const { sim: other, kube: theirs } = await cluster({ defaultPodSecurity: 'baseline' });
  const { K } = await import('../../src/sim/kube/controllers.ts');
  other.store.update(K.Namespace, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'media', labels: { team: 'media' } },
  });
  const inMedia = KubernetesSchema.parse({ namespace: 'media' });
  const plan = planCluster(await gatherClusterFacts(theirs, inMedia, GPU_NODES), inMedia, GPU_NODES);
  assert.ok(!plan.steps.some((s) => s.id === 'cluster/namespace/media'), 'no takeover');
  assert.match(
    plan.checks.find((c) => c.id === 'cluster.namespace')?.evidence ?? '',
    /namespace media exists and is not igpu-split's: used as it is \(Pod Security enforce: the cluster default\)/,
  );
  await applyClusterPlan(theirs, plan);
  const failing = await verifyCluster(theirs, inMedia, GPU_NODES, { ...fast, smoke: false });
  assert.match(failing[0]?.evidence ?? '', /no plugin pod on k3s-1/);
  assert.match(failing[0]?.fix ?? '', /allows privileged pods/);
  other.store.mergePatch(K.Namespace, undefined, 'media', {
    metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } },
  });
  assert.ok((await verifyCluster(theirs, inMedia, GPU_NODES, fast)).every((c) => c.status === 'pass'));
  await rollbackCluster(theirs, inMedia, GPU_NODES);
  assert.ok(await theirs.get('v1', 'Namespace', 'media'), "rollback leaves the user's namespace");
});

test('drain: DaemonSet pods stay, a PodDisruptionBudget blocks with its name, then the node drains and uncordons', async () => {
  const { sim, kube } = await cluster();
  const { K } = await import('../../src/sim/kube/controllers.ts');
  for (const name of ['web-1', 'web-2']) {
    sim.store.update(K.Pod, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'default',
        labels: { app: 'web' },
        ownerReferences: [{ kind: 'ReplicaSet', name: 'web-5d8f', uid: 'rs-uid', controller: true }],
      },
      spec: { nodeName: 'k3s-1', containers: [{ name: 'web', image: 'nginx' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }
  sim.store.update(K.PodDisruptionBudget, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'web-pdb', namespace: 'default' },
    spec: { minAvailable: 2, selector: { matchLabels: { app: 'web' } } },
  });
  await fails(
    drainNode(kube, 'k3s-1', { timeoutMs: 50, pollMs: 10 }),
    /node k3s-1 did not drain in time: default\/web-1: The disruption budget web-pdb needs 2 healthy pods and has 2 currently — the node stays cordoned/,
  );
  assert.equal((await kube.get('v1', 'Node', 'k3s-1'))?.spec?.unschedulable, true);
  sim.store.delete(K.PodDisruptionBudget, 'default', 'web-pdb');
  await drainNode(kube, 'k3s-1', { timeoutMs: 1_000, pollMs: 10 });
  assert.deepEqual(await kube.list('v1', 'Pod', { namespace: 'default' }), []);
  await uncordonNode(kube, 'k3s-1');
  assert.equal((await kube.get('v1', 'Node', 'k3s-1'))?.spec?.unschedulable, undefined);
  // A pod no controller owns would be lost: drain refuses and names it.
  sim.store.update(K.Pod, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'debug', namespace: 'default' },
    spec: { nodeName: 'k3s-1', containers: [{ name: 'sh', image: 'busybox' }] },
    status: { phase: 'Running' },
  });
  await fails(
    drainNode(kube, 'k3s-1', { timeoutMs: 50, pollMs: 10 }),
    /runs pods no controller owns \(default\/debug\)/,
  );
});

test('operator mode: a missing operator (and cert-manager) is a failing check with how to install', async () => {
  const { kube } = await cluster();
  const settings = KubernetesSchema.parse({ plugin: { mode: 'operator' } });
  const plan = planCluster(await gatherClusterFacts(kube, settings, GPU_NODES), settings, GPU_NODES);
  assert.match(plan.refused ?? '', /CRD gpudeviceplugins.deviceplugin.intel.com is not installed/);
  assert.match(plan.checks[0]?.fix ?? '', /install cert-manager first/);
  await fails(applyClusterPlan(kube, plan), /cannot be applied/);
  // With both installed, the GpuDevicePlugin is applied and the plugin runs.
  const ready = await cluster({
    crds: ['gpudeviceplugins.deviceplugin.intel.com', 'certificates.cert-manager.io'],
  });
  const ok = planCluster(await gatherClusterFacts(ready.kube, settings, GPU_NODES), settings, GPU_NODES);
  assert.deepEqual(ok.steps.map((s) => s.id).slice(0, 2), [
    'cluster/namespace/igpu-split',
    'cluster/gpudeviceplugin/igpu-split',
  ]);
  await applyClusterPlan(ready.kube, ok);
  assert.ok((await verifyCluster(ready.kube, settings, GPU_NODES, fast)).every((c) => c.status === 'pass'));
  // Asking the API for a kind whose CRD is gone is one line naming the fix.
  await fails(
    kube.apply({ apiVersion: 'deviceplugin.intel.com/v1', kind: 'GpuDevicePlugin', metadata: { name: 'x' } }),
    /does not know this kind.*install Intel's device plugin operator/,
  );
});

test('bad input: node not found, RBAC refusal naming verb and resource, a smoke pod left Pending', async () => {
  const { sim, kube } = await cluster({ forbidden: ['patch nodes'] });
  const settings = KubernetesSchema.parse({});
  const nodes = [...GPU_NODES, { name: 'ghost', vgpus: 1 }];
  const plan = planCluster(await gatherClusterFacts(kube, settings, nodes), settings, nodes);
  assert.match(plan.refused ?? '', /Kubernetes has no node ghost/);
  await fails(
    applyClusterPlan(kube, { ...plan, refused: undefined }),
    /apply Node k3s-1: forbidden: cannot patch nodes — grant the kubeconfig's user "patch" on "nodes"/,
  );
  sim.forbidden.clear();
  await applyClusterPlan(kube, { ...plan, refused: undefined });
  // Another pod holds the only device: the smoke pod cannot be scheduled.
  const { K } = await import('../../src/sim/kube/controllers.ts');
  sim.store.update(K.Pod, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'jellyfin', namespace: 'default' },
    spec: {
      nodeName: 'k3s-1',
      containers: [{ name: 'j', image: 'jellyfin', resources: { limits: { 'gpu.intel.com/i915': '1' } } }],
    },
    status: { phase: 'Running' },
  });
  const checks = await verifyCluster(kube, settings, GPU_NODES, { pollMs: 5, timeoutMs: 100 });
  const smoke = checks.find((c) => c.id === 'cluster.k3s-1.smoke');
  assert.equal(smoke?.status, 'fail');
  assert.match(
    smoke?.evidence ?? '',
    /stayed Pending: 0\/3 nodes are available: 1 Insufficient gpu.intel.com\/i915, 2 node\(s\) didn't match Pod's node affinity\/selector\./,
  );
});

test('no kubeconfig, an unknown context, an unreachable server: one line each', async () => {
  assert.throws(
    () => openKube({ kubeconfig: join(dir, 'nope') }),
    /cannot read kubeconfig .*nope: no such file/,
  );
  const { file, sim } = await cluster();
  assert.throws(
    () => openKube({ kubeconfig: file, context: 'prod' }),
    (error: unknown) =>
      error instanceof IgpuSplitError &&
      /has no context prod — set kubernetes.context in the lab file to one of: igpu-sim/.test(
        error.oneLine(),
      ),
  );
  await sim.close();
  await fails(
    openKube({ kubeconfig: file, attempts: 2, backoffMs: 5 }).list('v1', 'Node'),
    /the API server is unreachable/,
  );
});

test('kubectl, pointed at the same server, lists the nodes and the objects igpu-split applied', {
  skip: existsSync('/usr/bin/kubectl') ? false : 'kubectl is not installed',
}, async () => {
  const { file, kube } = await cluster();
  const settings = KubernetesSchema.parse({});
  await applyClusterPlan(
    kube,
    planCluster(await gatherClusterFacts(kube, settings, GPU_NODES), settings, GPU_NODES),
  );
  const kubectl = async (...args: string[]) => (await run('kubectl', ['--kubeconfig', file, ...args])).stdout;
  assert.match(
    await kubectl('get', 'nodes', '-l', 'intel.feature.node.kubernetes.io/gpu=true', '-o', 'name'),
    /^node\/k3s-1\nnode\/talos-1\n$/,
  );
  assert.match(
    await kubectl(
      '-n',
      'igpu-split',
      'get',
      'ds',
      '-o',
      'jsonpath={.items[0].spec.template.spec.containers[0].image}',
    ),
    new RegExp(`^${GPU_PLUGIN.image}:${GPU_PLUGIN.tag.replaceAll('.', '\\.')}$`),
  );
  assert.match(
    await kubectl('get', 'node', 'k3s-1', '-o', "jsonpath={.status.allocatable['gpu\\.intel\\.com/i915']}"),
    /^1$/,
  );
});

test('watch: the server streams what exists, then each change', async () => {
  const { file } = await cluster();
  const { KubeConfig, Watch } = await import('@kubernetes/client-node');
  const config = new KubeConfig();
  config.loadFromFile(file);
  const seen: string[] = [];
  const gotTwo = new Promise<void>((resolve) => {
    void new Watch(config)
      .watch(
        '/api/v1/nodes',
        {},
        (phase, node) => {
          seen.push(`${phase} ${node.metadata.name}`);
          if (seen.includes('MODIFIED k3s-1')) resolve();
        },
        () => undefined,
      )
      .then((controller) => {
        after(() => controller.abort());
      });
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const kube = openKube({ kubeconfig: file });
  await kube.setUnschedulable('k3s-1', true);
  await gotTwo;
  assert.deepEqual(seen.slice(0, 3), ['ADDED cp-1', 'ADDED k3s-1', 'ADDED talos-1']);
  assert.ok(seen.includes('MODIFIED k3s-1'));
});

test('the API server away during a drain: short outages are retried, a long one is one line naming it', async () => {
  const { sim, file } = await cluster();
  const kube = openKube({ kubeconfig: file, attempts: 3, backoffMs: 5 });
  sim.unavailable.count = 2;
  await drainNode(kube, 'k3s-1', { timeoutMs: 1_000, pollMs: 5 });
  assert.equal((await kube.get('v1', 'Node', 'k3s-1'))?.spec?.unschedulable, true);
  sim.unavailable.count = 100;
  await fails(
    uncordonNode(kube, 'k3s-1'),
    /uncordon node k3s-1 \(3 attempts\): HTTP 503 \(the server is currently unable to handle the request\)/,
  );
  sim.unavailable.count = 0;
});

test('a Talos node on an SR-IOV VF (xe) offers gpu.intel.com/xe: verify and the smoke pod ask for it', async () => {
  const { kube } = await cluster({
    vainfo: true,
    nodes: [{ name: 'k3s-1', gpus: 1 }, { name: 'talos-1', gpus: 1, driver: 'xe' }, { name: 'cp-1' }],
  });
  const settings = KubernetesSchema.parse({ smokeImage: 'jellyfin/jellyfin:10.10' });
  const vfNodes: GpuNode[] = [
    { name: 'k3s-1', vgpus: 1, vf: true },
    { name: 'talos-1', vgpus: 1, driver: 'xe', vf: true },
  ];
  await applyClusterPlan(
    kube,
    planCluster(await gatherClusterFacts(kube, settings, vfNodes), settings, vfNodes),
  );
  const checks = await verifyCluster(kube, settings, vfNodes, fast);
  assert.deepEqual(
    checks.map((c) => `${c.id} ${c.status}`),
    [
      'cluster.k3s-1.plugin pass',
      'cluster.k3s-1.allocatable pass',
      'cluster.k3s-1.smoke pass',
      'cluster.talos-1.plugin pass',
      'cluster.talos-1.allocatable pass',
      'cluster.talos-1.smoke pass',
    ],
  );
  assert.match(checks[4]?.evidence ?? '', /talos-1 advertises gpu\.intel\.com\/xe: 1/);
  assert.match(checks[5]?.evidence ?? '', /^VA-API profiles listed: .*: the VF renders$/);
  // Taken for an i915 node, the same xe node offers nothing of gpu.intel.com/i915: a failing check.
  const wrong = await verifyCluster(kube, settings, [{ name: 'talos-1', vgpus: 1 }], fast);
  assert.match(
    wrong.find((c) => c.id === 'cluster.talos-1.allocatable')?.evidence ?? '',
    /gpu\.intel\.com\/i915: 0/,
  );
});

test('with the monitoring resource on, verify counts only the GPU resource; turning it off takes it away', async () => {
  const { kube } = await cluster();
  const on = KubernetesSchema.parse({ plugin: { monitoring: true, sharedDevNum: 2 } });
  await applyClusterPlan(kube, planCluster(await gatherClusterFacts(kube, on, GPU_NODES), on, GPU_NODES));
  const allocatable = async () =>
    ((await kube.get('v1', 'Node', 'k3s-1'))?.status as { allocatable?: Record<string, string> } | undefined)
      ?.allocatable ?? {};
  assert.equal((await allocatable())['gpu.intel.com/monitoring'], '1');
  const checks = await verifyCluster(kube, on, GPU_NODES, { ...fast, smoke: false });
  assert.deepEqual(
    checks.map((c) => `${c.id} ${c.status}`),
    [
      'cluster.k3s-1.plugin pass',
      'cluster.k3s-1.allocatable pass',
      'cluster.talos-1.plugin pass',
      'cluster.talos-1.allocatable pass',
    ],
  );
  assert.match(checks[1]?.evidence ?? '', /advertises gpu\.intel\.com\/i915: 2 \(1 vGPU × 2\)$/);
  const off = KubernetesSchema.parse({ plugin: { sharedDevNum: 2 } });
  const plan = planCluster(await gatherClusterFacts(kube, off, GPU_NODES), off, GPU_NODES);
  assert.deepEqual(
    plan.steps.map((s) => s.id),
    ['cluster/daemonset/intel-gpu-plugin'],
  );
  await applyClusterPlan(kube, plan);
  assert.equal((await allocatable())['gpu.intel.com/monitoring'], undefined);
});

test('a node that advertises no GPU under an allow list: the fix names the list, not only the guest', async () => {
  const { kube } = await cluster({ nodes: [{ name: 'k3s-1', gpus: 0 }, { name: 'cp-1' }] });
  const nodes: GpuNode[] = [{ name: 'k3s-1', vgpus: 1 }];
  const allow = KubernetesSchema.parse({ plugin: { allowIds: ['0x4680'] } });
  await applyClusterPlan(kube, planCluster(await gatherClusterFacts(kube, allow, nodes), allow, nodes));
  const fixOf = async (settings: typeof allow) =>
    (await verifyCluster(kube, settings, nodes, { ...fast, smoke: false })).find(
      (c) => c.id === 'cluster.k3s-1.allocatable',
    )?.fix;
  assert.equal(
    await fixOf(allow),
    "the plugin found no Intel GPU it may advertise: check kubernetes.plugin.allowIds (0x4680) against the vGPU's device id (lspci -nn in the guest), then run igpu-split guest verify for its VM",
  );
  assert.equal(
    await fixOf(KubernetesSchema.parse({})),
    'the plugin found no Intel GPU on that node: run igpu-split guest verify for its VM',
  );
});
