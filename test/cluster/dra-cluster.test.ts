// DRA mode against the project's Kubernetes API server (Kubernetes 1.34 with
// resource.k8s.io/v1 and a simulated Intel DRA driver; over HTTPS through
// @kubernetes/client-node): plan → apply → verify (slices, class, admin-claim smoke pods,
// allocations unchanged) → plan empty → rollback removes exactly ours; and the bad cases:
// a 1.33 cluster, both allocators, a DeviceClass of another driver, a slice that never
// appears, the DRAAdminAccess gate off, a namespace without the admin label.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { applyClusterPlan, rollbackCluster } from '../../src/cluster/apply.ts';
import { openKube } from '../../src/cluster/kube.ts';
import { type GpuNode, gatherClusterFacts, planCluster } from '../../src/cluster/plan.ts';
import { verifyCluster } from '../../src/cluster/verify.ts';
import { KubernetesSchema } from '../../src/config/lab.ts';
import { labStatus, renderStatus } from '../../src/engine/status.ts';
import { K } from '../../src/sim/kube/controllers.ts';
import {
  type KubeSimulatorOptions,
  type RunningKubeSimulator,
  startKubeSimulator,
} from '../../src/sim/kube/server.ts';

let dir: string;
const sims: RunningKubeSimulator[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-dra-'));
});
after(async () => {
  for (const sim of sims) await sim.close();
  await rm(dir, { recursive: true, force: true });
});

const NODES: KubeSimulatorOptions['nodes'] = [
  { name: 'k3s-1', gpus: 1 },
  { name: 'k3s-2', gpus: 1 },
  { name: 'cp-1' },
];
const GPU_NODES: GpuNode[] = [
  { name: 'k3s-1', vgpus: 1 },
  { name: 'k3s-2', vgpus: 1 },
];
const DRA = KubernetesSchema.parse({ allocator: 'dra' });
const fast = { pollMs: 5, timeoutMs: 2_000 };

async function cluster(options: Partial<KubeSimulatorOptions> = {}) {
  const sim = await startKubeSimulator({ nodes: NODES, ...options });
  sims.push(sim);
  const file = join(dir, `kubeconfig-${sims.length}`);
  await writeFile(file, sim.kubeconfig);
  return { sim, kube: openKube({ kubeconfig: file }) };
}

async function applied(options: Partial<KubeSimulatorOptions> = {}, settings = DRA) {
  const made = await cluster(options);
  const plan = planCluster(await gatherClusterFacts(made.kube, settings, GPU_NODES), settings, GPU_NODES);
  assert.equal(plan.refused, undefined, plan.refused);
  await applyClusterPlan(made.kube, plan);
  return made;
}

/** A workload's claim, allocated to k3s-1's device by a running pod. */
async function workload(kube: Awaited<ReturnType<typeof cluster>>['kube']) {
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media' } });
  await kube.create({
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name: 'transcode', namespace: 'media' },
    spec: {
      devices: {
        requests: [
          {
            name: 'gpu',
            exactly: { deviceClassName: 'gpu.intel.com', allocationMode: 'ExactCount', count: 1 },
          },
        ],
      },
    },
  });
  await kube.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'jellyfin', namespace: 'media' },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': 'k3s-1' },
      resourceClaims: [{ name: 'gpu', resourceClaimName: 'transcode' }],
      containers: [
        {
          name: 'jf',
          image: 'jellyfin/jellyfin:10.10.7',
          command: ['sleep', 'infinity'],
          resources: { claims: [{ name: 'gpu' }] },
        },
      ],
    },
  });
  const claim = await kube.get('resource.k8s.io/v1', 'ResourceClaim', 'transcode', 'media');
  const results = (claim?.status as { allocation?: { devices?: { results?: unknown[] } } } | undefined)
    ?.allocation?.devices?.results;
  assert.equal(results?.length, 1, 'the workload holds k3s-1’s device');
  return claim;
}

test('DRA: plan → apply → verify with admin claims, a workload’s allocation untouched → plan empty → rollback', async () => {
  const { sim, kube } = await applied();
  const held = await workload(kube);
  const checks = await verifyCluster(kube, DRA, GPU_NODES, fast);
  assert.deepEqual(
    checks.map((c) => `${c.id} ${c.status}`),
    [
      'cluster.k3s-1.driver pass',
      'cluster.k3s-1.slice pass',
      'cluster.k3s-1.deviceclass pass',
      'cluster.k3s-1.smoke pass',
      'cluster.k3s-2.driver pass',
      'cluster.k3s-2.slice pass',
      'cluster.k3s-2.deviceclass pass',
      'cluster.k3s-2.smoke pass',
      'cluster.allocations pass',
    ],
  );
  // k3s-1's only device is the workload's: the admin claim reached it anyway, and took nothing.
  assert.match(checks.at(-1)?.evidence ?? '', /left every device's allocation as it was \(1 claim compared/);
  const after = await kube.get('resource.k8s.io/v1', 'ResourceClaim', 'transcode', 'media');
  assert.deepEqual(after?.status, held?.status);
  assert.deepEqual(
    sim.store.list(K.Pod, DRA.namespace).filter((p) => p.metadata.name.startsWith('igpu-split-smoke')),
    [],
    'smoke pods deleted',
  );
  const claims = await kube.list('resource.k8s.io/v1', 'ResourceClaim', { namespace: DRA.namespace });
  assert.deepEqual(claims, [], 'smoke claims deleted');
  const again = planCluster(await gatherClusterFacts(kube, DRA, GPU_NODES), DRA, GPU_NODES);
  assert.deepEqual(again.steps, []);
  const done = await rollbackCluster(kube, DRA, GPU_NODES);
  assert.deepEqual(done.filter((line) => line.startsWith('deleted')).sort(), [
    'deleted ClusterRole intel-gpu-resource-driver-role',
    'deleted ClusterRoleBinding intel-gpu-resource-driver-role-binding',
    'deleted DaemonSet intel-gpu-resource-driver-kubelet-plugin',
    'deleted DeviceClass gpu.intel.com',
    'deleted Namespace igpu-split',
    'deleted Namespace intel-gpu-resource-driver',
    'deleted ServiceAccount intel-gpu-resource-driver-service-account',
    'deleted ValidatingAdmissionPolicy resourceslices-policy-dra-kubelet-plugin-gpu',
    'deleted ValidatingAdmissionPolicyBinding resourceslices-policy-dra-kubelet-plugin-gpu',
  ]);
  // The user's claim and namespace are not ours: they stay.
  assert.ok(await kube.get('resource.k8s.io/v1', 'ResourceClaim', 'transcode', 'media'));
});

test('DRA: status lists each node’s device and the claims on it', async () => {
  const { kube } = await applied();
  await workload(kube);
  const lab = {
    kubernetes: DRA,
    hosts: [{ node: 'pve1' }],
    vms: [{ vmid: 101, host: 'pve1', kubernetesNode: 'k3s-1' }],
    sriov: { mapping: 'vf' },
  };
  const proxmox = {
    mappings: async () => [],
    pciDevices: async () => [],
    mdevTypes: async () => [],
    vmConfig: async () => ({ values: { name: 'k3s-1' } }),
    vmStatus: async () => ({ status: 'running' }),
  };
  const hosts = await labStatus(lab as never, { kube, proxmox } as never);
  const text = renderStatus(hosts);
  assert.match(text, /└─ node k3s-1 {2}gpu\.intel\.com: 1 used \/ 0 free/);
  assert.match(text, /└─ device \S+ {2}claims: media\/transcode/);
});

test('DRA refused on Kubernetes 1.33, naming the cluster, the version and what would serve it', async () => {
  const { kube } = await cluster({ version: '1.33' });
  const plan = planCluster(await gatherClusterFacts(kube, DRA, GPU_NODES), DRA, GPU_NODES);
  assert.match(
    plan.refused ?? '',
    /^cluster https:\/\/127\.0\.0\.1:\d+ runs Kubernetes v1\.33\.\S+; allocator dra needs 1\.34 or later/,
  );
  assert.ok(!plan.steps.some((s) => s.object?.apiVersion === 'resource.k8s.io/v1'), 'nothing of DRA planned');
});

test('both allocators: DRA refused while the device plugin runs, and the other way round', async () => {
  const { kube } = await applied({}, KubernetesSchema.parse({}));
  const dra = planCluster(await gatherClusterFacts(kube, DRA, GPU_NODES), DRA, GPU_NODES);
  assert.match(
    dra.refused ?? '',
    /already runs Intel's GPU device plugin \(DaemonSet igpu-split\/intel-gpu-plugin \(igpu-split’s\)\)/,
  );
  const other = await applied();
  const plugin = planCluster(
    await gatherClusterFacts(other.kube, KubernetesSchema.parse({}), GPU_NODES),
    KubernetesSchema.parse({}),
    GPU_NODES,
  );
  assert.match(plugin.refused ?? '', /already runs Intel's GPU DRA driver/);
});

test('a DeviceClass of another driver with the name gpu.intel.com is refused, and left alone', async () => {
  const { kube } = await cluster();
  await kube.create({
    apiVersion: 'resource.k8s.io/v1',
    kind: 'DeviceClass',
    metadata: { name: 'gpu.intel.com' },
    spec: { selectors: [{ cel: { expression: 'device.driver == "gpu.example.com"' } }] },
  });
  const plan = planCluster(await gatherClusterFacts(kube, DRA, GPU_NODES), DRA, GPU_NODES);
  assert.match(
    plan.refused ?? '',
    /DeviceClass gpu\.intel\.com in cluster \S+ exists and selects device\.driver == "gpu\.example\.com": another driver uses the name/,
  );
});

test('a ResourceSlice that never appears: one line naming the node, after a bounded wait', async () => {
  const { sim, kube } = await applied();
  sim.setDraSlice('k3s-2', false);
  const checks = await verifyCluster(kube, DRA, GPU_NODES, { ...fast, settleMs: 50 });
  const slice = checks.find((c) => c.id === 'cluster.k3s-2.slice');
  assert.equal(slice?.status, 'fail');
  assert.match(slice?.evidence ?? '', /^no ResourceSlice of gpu\.intel\.com lists a device on k3s-2$/);
  assert.equal(
    checks.find((c) => c.id === 'cluster.k3s-2.smoke'),
    undefined,
    'no smoke pod without a device',
  );
  assert.equal(checks.find((c) => c.id === 'cluster.k3s-1.smoke')?.status, 'pass');
});

test('the DRAAdminAccess gate off: the claim comes back without adminAccess and no pod runs', async () => {
  const { sim, kube } = await applied({ features: { draAdminAccess: false } });
  const checks = await verifyCluster(kube, DRA, GPU_NODES, fast);
  const smoke = checks.find((c) => c.id === 'cluster.k3s-1.smoke');
  assert.equal(smoke?.status, 'fail');
  assert.match(
    smoke?.evidence ?? '',
    /dropped adminAccess from verify's claim \(the DRAAdminAccess feature gate is off\)/,
  );
  assert.deepEqual(
    sim.store.list(K.Pod, DRA.namespace).filter((p) => p.metadata.name.startsWith('igpu-split-smoke')),
    [],
  );
});

test('a namespace without the admin-access label: one line naming the label', async () => {
  const { kube } = await applied();
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: DRA.namespace, labels: { 'app.kubernetes.io/managed-by': 'igpu-split' } },
  });
  const checks = await verifyCluster(kube, DRA, GPU_NODES, fast);
  const smoke = checks.find((c) => c.id === 'cluster.k3s-1.smoke');
  assert.equal(smoke?.status, 'fail');
  assert.match(
    smoke?.evidence ?? '',
    /namespace igpu-split lacks the label resource\.kubernetes\.io\/admin-access=true/,
  );
});

test('the rendered examples: the API server takes them, and two pods share one device through one claim', async () => {
  const { kube } = await applied();
  const { claimTemplateExample, sharedClaimExample } = await import('../../src/cluster/dra-objects.ts');
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } });
  const inApps = (o: ReturnType<typeof claimTemplateExample>) => ({
    ...o,
    metadata: { ...o.metadata, namespace: 'apps' },
  });
  await kube.create(inApps(claimTemplateExample()));
  for (const object of sharedClaimExample()) await kube.create(inApps(object));
  const claim = await kube.get('resource.k8s.io/v1', 'ResourceClaim', 'shared-intel-gpu', 'apps');
  const status = claim?.status as {
    allocation?: { devices?: { results?: unknown[] } };
    reservedFor?: { name: string }[];
  };
  assert.equal(status.allocation?.devices?.results?.length, 1, 'one device');
  assert.deepEqual(status.reservedFor?.map((r) => r.name).sort(), ['media-worker-1', 'media-worker-2']);
});

test('DRA in a namespace the user owns: used as it is, and the plan names the admin-access label it lacks', async () => {
  const { kube } = await cluster();
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media' } });
  const settings = KubernetesSchema.parse({ allocator: 'dra', namespace: 'media' });
  const plan = planCluster(await gatherClusterFacts(kube, settings, GPU_NODES), settings, GPU_NODES);
  const check = plan.checks.find((c) => c.id === 'cluster.namespace');
  assert.equal(check?.status, 'warn');
  assert.match(
    check?.evidence ?? '',
    /namespace media exists and is not igpu-split's: used as it is, without the label resource\.kubernetes\.io\/admin-access=true/,
  );
  assert.match(
    check?.fix ?? '',
    /kubectl label namespace media resource\.kubernetes\.io\/admin-access=true \(any claim in it may then ask for admin access to every device\)/,
  );
  assert.ok(
    !plan.steps.some((s) => s.id === 'cluster/namespace/media'),
    'the user’s namespace is not taken over',
  );
});
