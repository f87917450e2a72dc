// Verifying the cluster layer: the plugin's pod is ready on every GPU node, each node
// advertises vGPUs × sharedDevNum of gpu.intel.com/i915 (gpu.intel.com/xe where its guest
// binds xe: a Talos node on an SR-IOV VF), and a smoke pod per GPU node
// gets one, sees the render node (and runs vainfo when the image has it). The smoke pod
// is deleted afterwards; one that cannot be scheduled is reported with the scheduler's
// reason.

import type { KubernetesSettings } from '../config/lab.ts';
import type { Check } from '../core/model.ts';
import { pollVisibly } from '../core/waits.ts';
import { GPU_RESOURCE, GPU_RESOURCE_OF } from '../knowledge/pins.ts';
import type { KubeApi, KubeObject } from './kube.ts';
import { OURS } from './objects.ts';
import { type GpuNode, missingNode } from './plan.ts';
import { SMOKE_SCRIPT, smokeCheck } from './smoke.ts';

export const RESOURCE = GPU_RESOURCE;

/** The resource a GPU node offers: named after the driver its guest binds (pins.ts GPU_RESOURCE_OF). */
export const resourceOf = (node: GpuNode): string => GPU_RESOURCE_OF[node.driver ?? 'i915'];
const PLUGIN_NAMESPACE_OPERATOR = 'inteldeviceplugins-system';

export interface VerifyOptions {
  smoke?: boolean;
  /** Right after apply: wait up to this long for the plugin to run and advertise on every GPU node. */
  settleMs?: number;
  timeoutMs?: number;
  pollMs?: number;
}

export async function verifyCluster(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  options: VerifyOptions = {},
): Promise<Check[]> {
  const checks: Check[] = [];
  const namespace = settings.plugin.mode === 'operator' ? PLUGIN_NAMESPACE_OPERATOR : settings.namespace;
  if (options.settleMs)
    await pollVisibly(
      {
        target: kube.target,
        what: `the GPU plugin to be ready on ${gpuNodes.map((n) => n.name).join(', ')}`,
        limitMs: options.settleMs,
      },
      () => settle(kube, namespace, gpuNodes, options.settleMs ?? 0, options.pollMs ?? 2_000),
    );
  const pods = await kube.list('v1', 'Pod', { namespace, labelSelector: 'app=intel-gpu-plugin' });
  for (const node of gpuNodes) {
    const live = await kube.get('v1', 'Node', node.name);
    if (!live) {
      checks.push(missingNode(node.name));
      continue;
    }
    const pod = pods.find((p) => p.spec?.nodeName === node.name);
    const ready = ((pod?.status?.conditions ?? []) as { type: string; status: string }[]).some(
      (c) => c.type === 'Ready' && c.status === 'True',
    );
    checks.push(
      ready
        ? {
            id: `cluster.${node.name}.plugin`,
            status: 'pass',
            evidence: `plugin pod ${pod?.metadata.name} is ready on ${node.name}`,
          }
        : {
            id: `cluster.${node.name}.plugin`,
            status: 'fail',
            evidence: pod
              ? `plugin pod ${pod.metadata.name} on ${node.name} is not ready`
              : `no plugin pod on ${node.name} (namespace ${namespace})`,
            fix: pod
              ? `kubectl -n ${namespace} logs ${pod.metadata.name}`
              : `check the node has the labels ${Object.entries(settings.plugin.nodeSelector)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(',')} and the namespace allows privileged pods (kubectl -n ${namespace} get events)`,
          },
    );
    const want = node.vgpus * settings.plugin.sharedDevNum;
    const resource = resourceOf(node);
    const have = Number(
      (live.status as { allocatable?: Record<string, string> } | undefined)?.allocatable?.[resource] ?? 0,
    );
    checks.push(
      have === want
        ? {
            id: `cluster.${node.name}.allocatable`,
            status: 'pass',
            evidence: `${node.name} advertises ${resource}: ${have} (${node.vgpus} vGPU × ${settings.plugin.sharedDevNum})`,
          }
        : {
            id: `cluster.${node.name}.allocatable`,
            status: have === 0 ? 'fail' : 'warn',
            evidence: `${node.name} advertises ${resource}: ${have}, expected ${want} (${node.vgpus} vGPU × sharedDevNum ${settings.plugin.sharedDevNum})`,
            fix:
              have === 0
                ? noGpuFix(settings)
                : 'the plugin runs with another sharedDevNum: apply the cluster plan again',
          },
    );
    if (options.smoke !== false && ready && have > 0) {
      const limitMs = options.timeoutMs ?? 120_000;
      const what = `the smoke pod on ${node.name}`;
      checks.push(
        await pollVisibly({ target: kube.target, what, limitMs }, () => smoke(kube, settings, node, options)),
      );
    }
  }
  return checks;
}

async function smoke(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNode: GpuNode,
  options: VerifyOptions,
): Promise<Check> {
  const node = gpuNode.name;
  const resource = resourceOf(gpuNode);
  const namespace = settings.namespace;
  const nodeLabel = node
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, 63);
  // Leftovers of an earlier run go first; a fresh name never meets one still terminating.
  const leftovers = await kube.list('v1', 'Pod', {
    namespace,
    labelSelector: `app.kubernetes.io/component=smoke,igpu-split.io/node=${nodeLabel}`,
  });
  for (const old of leftovers) await kube.delete('v1', 'Pod', old.metadata.name, namespace);
  const name = `${`igpu-split-smoke-${nodeLabel}`.slice(0, 56).replace(/[-.]+$/, '')}-${Math.random().toString(36).slice(2, 7)}`;
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
        containers: [
          {
            name: 'smoke',
            image: settings.smokeImage,
            command: ['sh', '-c', SMOKE_SCRIPT],
            resources: { limits: { [resource]: '1' } },
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
              ? `the node has no free ${resource}: raise sharedDevNum or free a device`
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

/** Waits (bounded) until every GPU node has a ready plugin pod and advertises the resource. */
async function settle(
  kube: KubeApi,
  namespace: string,
  gpuNodes: readonly GpuNode[],
  settleMs: number,
  pollMs: number,
) {
  const deadline = Date.now() + settleMs;
  while (Date.now() < deadline) {
    const pods = await kube.list('v1', 'Pod', { namespace, labelSelector: 'app=intel-gpu-plugin' });
    const nodes = await kube.list('v1', 'Node');
    const ready = gpuNodes.every((node) => {
      const pod = pods.find((p) => p.spec?.nodeName === node.name);
      const live = nodes.find((n) => n.metadata.name === node.name);
      const podReady = ((pod?.status?.conditions ?? []) as { type: string; status: string }[]).some(
        (c) => c.type === 'Ready' && c.status === 'True',
      );
      const advertised = Number(
        (live?.status as { allocatable?: Record<string, string> } | undefined)?.allocatable?.[
          resourceOf(node)
        ] ?? 0,
      );
      return !live || (podReady && advertised > 0);
    });
    if (ready) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** What to do when a node advertises no GPU; an id list of the lab's may be what hides it. */
function noGpuFix(settings: KubernetesSettings): string {
  const { allowIds, denyIds } = settings.plugin;
  const list = allowIds.length > 0 ? `allowIds (${allowIds.join(', ')})` : `denyIds (${denyIds.join(', ')})`;
  return allowIds.length > 0 || denyIds.length > 0
    ? `the plugin found no Intel GPU it may advertise: check kubernetes.plugin.${list} against the vGPU's device id (lspci -nn in the guest), then run igpu-split guest verify for its VM`
    : 'the plugin found no Intel GPU on that node: run igpu-split guest verify for its VM';
}
