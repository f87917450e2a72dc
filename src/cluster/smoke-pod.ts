// The smoke pod's run, shared by both allocators: one pod on the node that asks for a GPU
// (a device-plugin resource, or a ResourceClaim), runs SMOKE_SCRIPT, is read and deleted.
// A pod that cannot be scheduled is reported with the scheduler's reason.

import type { GpuNode } from '../config/derived.ts';
import type { KubernetesSettings } from '../config/lab.ts';
import type { Check } from '../core/model.ts';
import { GPU_RESOURCE_OF } from '../knowledge/pins.ts';
import type { KubeApi, KubeObject } from './kube.ts';
import { OURS } from './manifest.ts';
import { SMOKE_SCRIPT, smokeCheck } from './smoke.ts';

/** The resource a GPU node offers: named after the driver its guest binds (pins.ts GPU_RESOURCE_OF). */
export const resourceOf = (node: GpuNode): string => GPU_RESOURCE_OF[node.driver ?? 'i915'];

/** A pod whose Ready condition is True. */
export const podReady = (pod: KubeObject | undefined): boolean =>
  ((pod?.status?.conditions ?? []) as { type: string; status: string }[]).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );

export interface VerifyOptions {
  smoke?: boolean;
  /** Right after apply: wait up to this long for the plugin to run and advertise on every GPU node. */
  settleMs?: number;
  timeoutMs?: number;
  pollMs?: number;
}

/** How the smoke pod asks for its GPU: a device-plugin resource, or a ResourceClaim (DRA). */
export interface SmokeRequest {
  resources: Record<string, unknown>;
  resourceClaims?: Record<string, unknown>[];
}

/** The smoke pod's name for a node: a label-safe prefix and a random tail. */
export function smokeName(node: string): { name: string; nodeLabel: string } {
  const nodeLabel = node
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, 63);
  const name = `${`igpu-split-smoke-${nodeLabel}`.slice(0, 56).replace(/[-.]+$/, '')}-${Math.random().toString(36).slice(2, 7)}`;
  return { name, nodeLabel };
}

export async function runSmokePod(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNode: GpuNode,
  options: VerifyOptions,
  request: SmokeRequest,
  named = smokeName(gpuNode.name),
): Promise<Check> {
  const node = gpuNode.name;
  const resource = request.resourceClaims ? 'GPU through its claim' : resourceOf(gpuNode);
  const namespace = settings.namespace;
  const { name, nodeLabel } = named;
  // Leftovers of an earlier run go first; a fresh name never meets one still terminating.
  const leftovers = await kube.list('v1', 'Pod', {
    namespace,
    labelSelector: `app.kubernetes.io/component=smoke,igpu-split.io/node=${nodeLabel}`,
  });
  for (const old of leftovers) await kube.delete('v1', 'Pod', old.metadata.name, namespace);
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let pod: KubeObject | undefined;
  try {
    await kube.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        labels: { ...OURS, 'app.kubernetes.io/component': 'smoke', 'igpu-split.io/node': nodeLabel },
      },
      spec: {
        restartPolicy: 'Never',
        nodeSelector: { 'kubernetes.io/hostname': node },
        ...(request.resourceClaims ? { resourceClaims: request.resourceClaims } : {}),
        containers: [
          {
            name: 'smoke',
            image: settings.smokeImage,
            command: ['sh', '-c', SMOKE_SCRIPT],
            resources: request.resources,
          },
        ],
      },
    });
    for (;;) {
      pod = await kube.get('v1', 'Pod', name, namespace);
      const phase = (pod?.status as { phase?: string } | undefined)?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') break;
      if (Date.now() > deadline) {
        const scheduled = (
          (pod?.status?.conditions ?? []) as { type: string; status: string; message?: string }[]
        ).find((c) => c.type === 'PodScheduled');
        return {
          id: `cluster.${node}.smoke`,
          status: 'fail',
          evidence:
            scheduled?.status === 'False'
              ? `the smoke pod on ${node} stayed Pending: ${scheduled.message ?? 'unschedulable'}`
              : `the smoke pod on ${node} did not finish in ${Math.round((options.timeoutMs ?? 120_000) / 1000)} s (${phase ?? 'no status'})`,
          fix:
            scheduled?.status === 'False'
              ? request.resourceClaims
                ? `the scheduler could not allocate the claim on ${node}: kubectl get resourceslices --field-selector spec.nodeName=${node}`
                : `the node has no free ${resource}: raise sharedDevNum or free a device`
              : `kubectl -n ${namespace} describe pod ${name}`,
        };
      }
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1_000));
    }
    return smokeCheck(node, await kube.logs(namespace, name), gpuNode.vf ? 'VF' : 'vGPU');
  } finally {
    await kube.delete('v1', 'Pod', name, namespace);
  }
}
