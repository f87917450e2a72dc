// Verify time per GPU node on the demo lab, device plugin beside DRA mode (issue 18), and
// whether DRA mode's verify left every claim's allocation as it was. One demo lab; each run
// installs one allocator, times `cluster verify` (smoke pods included), rolls it back and
// does the same for the other, alternating which goes first. In DRA mode a workload's
// claim holds one node's only device while verify runs, so the admin claim is tested
// against a device in use.

import { applyClusterPlan, rollbackCluster } from '../src/cluster/apply.ts';
import { gatherClusterFacts, planCluster } from '../src/cluster/plan.ts';
import { verifyCluster } from '../src/cluster/verify.ts';
import { gpuNodesOf } from '../src/config/derived.ts';
import { KubernetesSchema, type KubernetesSettings } from '../src/config/lab.ts';
import { startDemoLab } from '../src/demo/lab.ts';

export interface ClusterVerifyResult {
  nodes: number;
  runs: number;
  devicePluginMsPerNode: number;
  draMsPerNode: number;
  /** Every DRA verify passed and kept every other claim's allocation. */
  allocationsUnchanged: boolean;
  claimsCompared: number;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

export async function benchClusterVerify(runs = 9): Promise<ClusterVerifyResult> {
  const demo = await startDemoLab();
  const kube = demo.connections.kube;
  const nodes = gpuNodesOf(demo.lab);
  const settings = (allocator: 'device-plugin' | 'dra'): KubernetesSettings =>
    KubernetesSchema.parse({ ...demo.lab.kubernetes, allocator });
  const times = { 'device-plugin': [] as number[], dra: [] as number[] };
  let unchanged = true;
  let compared = 0;
  const options = { pollMs: 10, timeoutMs: 30_000 };
  try {
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? (['device-plugin', 'dra'] as const) : (['dra', 'device-plugin'] as const);
      for (const allocator of order) {
        const wanted = settings(allocator);
        const plan = planCluster(await gatherClusterFacts(kube, wanted, nodes), wanted, nodes);
        if (plan.refused) throw new Error(plan.refused);
        await applyClusterPlan(kube, plan);
        // Settled before the clock starts: the driver's pods and slices, the plugin's resources.
        await verifyCluster(kube, wanted, nodes, { ...options, smoke: false, settleMs: 30_000 });
        if (allocator === 'dra') await holdWorkload(kube, nodes[0]?.name as string);
        const start = performance.now();
        const checks = await verifyCluster(kube, wanted, nodes, options);
        times[allocator].push((performance.now() - start) / nodes.length);
        const failed = checks.filter((c) => c.status === 'fail');
        if (failed.length > 0)
          throw new Error(`${allocator} verify failed: ${failed.map((c) => c.evidence).join('; ')}`);
        if (allocator === 'dra') {
          const allocations = checks.find((c) => c.id === 'cluster.allocations');
          unchanged &&= allocations?.status === 'pass';
          compared = Number(/\((\d+) claims? compared/.exec(allocations?.evidence ?? '')?.[1] ?? 0);
          await kube.delete('v1', 'Pod', 'transcode', 'media');
          await kube.delete('resource.k8s.io/v1', 'ResourceClaim', 'transcode', 'media');
        }
        await rollbackCluster(kube, wanted, nodes);
      }
    }
  } finally {
    await demo.close();
  }
  return {
    nodes: nodes.length,
    runs,
    devicePluginMsPerNode: median(times['device-plugin']),
    draMsPerNode: median(times.dra),
    allocationsUnchanged: unchanged,
    claimsCompared: compared,
  };
}

/** A workload's claim on `node`'s device, held by a running pod. */
async function holdWorkload(
  kube: Awaited<ReturnType<typeof startDemoLab>>['connections']['kube'],
  node: string,
) {
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media' } });
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
    metadata: { name: 'transcode', namespace: 'media' },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      resourceClaims: [{ name: 'gpu', resourceClaimName: 'transcode' }],
      containers: [
        {
          name: 'ffmpeg',
          image: 'jellyfin/jellyfin:10.10.7',
          command: ['sleep', 'infinity'],
          resources: { claims: [{ name: 'gpu' }] },
        },
      ],
    },
  });
}
