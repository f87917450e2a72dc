// Verifying the cluster layer: the plugin's pod is ready on every GPU node, each node
// advertises vGPUs × sharedDevNum of gpu.intel.com/i915 (gpu.intel.com/xe where its guest
// binds xe: a Talos node on an SR-IOV VF), and a smoke pod per GPU node
// gets one, sees the render node (and runs vainfo when the image has it). The smoke pod
// is deleted afterwards; one that cannot be scheduled is reported with the scheduler's
// reason.

import type { KubernetesSettings } from '../config/lab.ts';
import type { Check } from '../core/model.ts';
import { pollVisibly } from '../core/waits.ts';
import { GPU_RESOURCE } from '../knowledge/pins.ts';
import { verifyDra } from './dra-verify.ts';
import type { KubeApi } from './kube.ts';
import { type GpuNode, missingNode } from './plan.ts';
import { podReady, resourceOf, runSmokePod, type VerifyOptions } from './smoke-pod.ts';

export { resourceOf, type VerifyOptions };

export const RESOURCE = GPU_RESOURCE;

const PLUGIN_NAMESPACE_OPERATOR = 'inteldeviceplugins-system';

export async function verifyCluster(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  options: VerifyOptions = {},
): Promise<Check[]> {
  if (settings.allocator === 'dra') return verifyDra(kube, settings, gpuNodes, options);
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
    const ready = podReady(pod);
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
      const request = { resources: { limits: { [resource]: '1' } } };
      checks.push(
        await pollVisibly({ target: kube.target, what, limitMs }, () =>
          runSmokePod(kube, settings, node, options, request),
        ),
      );
    }
  }
  return checks;
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

      const advertised = Number(
        (live?.status as { allocatable?: Record<string, string> } | undefined)?.allocatable?.[
          resourceOf(node)
        ] ?? 0,
      );
      return !live || (podReady(pod) && advertised > 0);
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
