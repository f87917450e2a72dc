// Verifying DRA mode, per GPU node: the driver's pod is ready there; a ResourceSlice of
// Intel's driver lists the node's GPU(s); the DeviceClass's selectors pick at least one of
// them; then a smoke pod takes its GPU through a ResourceClaim with adminAccess: true, so
// verify never takes a device a workload holds or needs (an admin claim ignores and does not
// block ordinary allocations: k8s.io/api resource/v1/types.go AdminAccess @v0.34.1). The
// claim is read back first: a server whose DRAAdminAccess gate is off drops the field, and
// then no pod runs. Every claim's allocation is compared before and after.

import type { GpuNode } from '../config/derived.ts';
import type { KubernetesSettings } from '../config/lab.ts';
import { IgpuSplitError } from '../core/errors.ts';
import type { Check } from '../core/model.ts';
import { clip } from '../core/text.ts';
import { pollVisibly } from '../core/waits.ts';
import { DRA_ADMIN_NAMESPACE_LABEL, DRA_DRIVER, DRA_IMAGE_NAME, runsImage } from '../knowledge/dra.ts';
import { type SliceDevice, selects } from './cel.ts';
import { RESOURCE_API } from './dra-objects.ts';
import type { KubeApi, KubeObject } from './kube.ts';
import { type Manifest, OURS } from './manifest.ts';
import { missingNode } from './plan.ts';
import { podReady, runSmokePod, smokeName, type VerifyOptions } from './smoke-pod.ts';

interface SliceSpec {
  driver?: string;
  nodeName?: string;
  pool?: { name?: string };
  devices?: SliceDevice[];
}

/** One device a claim holds, as its allocation lists it. */
export interface ClaimResult {
  driver?: string;
  pool?: string;
  device?: string;
  adminAccess?: boolean;
}

/** The devices of Intel's driver a claim holds (another driver's results left out). */
export function claimResults(claim: KubeObject): ClaimResult[] {
  const status = claim.status as { allocation?: { devices?: { results?: ClaimResult[] } } } | undefined;
  return (status?.allocation?.devices?.results ?? []).filter(
    (r) => r.driver === undefined || r.driver === DRA_DRIVER.driverName,
  );
}

/** A claim's allocation, as verify compares it: `pool/device` per result, admin marked. */
export function allocationOf(claim: KubeObject): string {
  return claimResults(claim)
    .map((r) => `${r.pool}/${r.device}${r.adminAccess ? ' (admin)' : ''}`)
    .sort()
    .join(', ');
}

const claimKey = (claim: KubeObject) => `${claim.metadata.namespace}/${claim.metadata.name}`;

/** A device as a slice lists it, with the pool allocations name it by. */
export type PooledDevice = SliceDevice & { pool: string };

/** The devices of Intel's driver each node's slices list. */
export async function devicesByNode(kube: KubeApi): Promise<Map<string, PooledDevice[]>> {
  const slices = await kube.list(RESOURCE_API, 'ResourceSlice');
  const byNode = new Map<string, PooledDevice[]>();
  for (const slice of slices) {
    const spec = (slice.spec ?? {}) as SliceSpec;
    if (spec.driver !== DRA_DRIVER.driverName || !spec.nodeName) continue;
    const pool = spec.pool?.name ?? spec.nodeName;
    byNode.set(spec.nodeName, [
      ...(byNode.get(spec.nodeName) ?? []),
      ...(spec.devices ?? []).map((d) => ({ ...d, pool })),
    ]);
  }
  return byNode;
}

async function driverPods(kube: KubeApi, settings: KubernetesSettings): Promise<KubeObject[]> {
  const pods = await kube.list('v1', 'Pod', { namespace: DRA_DRIVER.namespace });
  const containers = (pod: KubeObject) =>
    ((pod.spec as { containers?: { image?: string }[] } | undefined)?.containers ?? []).map(
      (c) => c.image ?? '',
    );
  return pods.filter((pod) =>
    containers(pod).some((image) => runsImage(image, settings.dra.image, DRA_IMAGE_NAME)),
  );
}

/** A DeviceClass's CEL selectors, as written. */
export function selectorsOf(deviceClass: KubeObject): string[] {
  const selectors = (deviceClass.spec as { selectors?: { cel?: { expression?: string } }[] } | undefined)
    ?.selectors;
  return (selectors ?? []).map((s) => s.cel?.expression ?? '(no CEL)');
}

export async function verifyDra(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  options: VerifyOptions = {},
): Promise<Check[]> {
  if (options.settleMs)
    await pollVisibly(
      {
        target: kube.target,
        what: `Intel's DRA driver to publish the GPUs of ${gpuNodes.map((n) => n.name).join(', ')}`,
        limitMs: options.settleMs,
      },
      () => settle(kube, settings, gpuNodes, options.settleMs ?? 0, options.pollMs ?? 2_000),
    );
  const [pods, devices, deviceClass] = await Promise.all([
    driverPods(kube, settings),
    devicesByNode(kube),
    kube.get(RESOURCE_API, 'DeviceClass', DRA_DRIVER.deviceClass),
  ]);
  const checks: Check[] = [];
  const smoke = options.smoke !== false;
  const before = smoke ? await allocations(kube) : new Map<string, string>();
  for (const node of gpuNodes) {
    const live = await kube.get('v1', 'Node', node.name);
    if (!live) {
      checks.push(missingNode(node.name));
      continue;
    }
    const pod = pods.find((p) => p.spec?.nodeName === node.name);
    checks.push(driverCheck(node.name, pod));
    const listed = devices.get(node.name) ?? [];
    checks.push(sliceCheck(node, listed, pod));
    const selected = classCheck(node.name, kube.target, deviceClass, listed);
    checks.push(selected);
    if (smoke && podReady(pod) && selected.status === 'pass')
      checks.push(await adminSmoke(kube, settings, node, options));
  }
  if (smoke) {
    const prefix = `${settings.namespace}/igpu-split-smoke-`;
    checks.push(await allocationsCheck(kube, before, (key) => key.startsWith(prefix)));
  }
  return checks;
}

/** Every claim's allocation, by namespace/name. */
async function allocations(kube: KubeApi): Promise<Map<string, string>> {
  const claims = await kube.list(RESOURCE_API, 'ResourceClaim');
  return new Map(claims.map((c) => [claimKey(c), allocationOf(c)] as const));
}

function driverCheck(node: string, pod: KubeObject | undefined): Check {
  if (podReady(pod))
    return {
      id: `cluster.${node}.driver`,
      status: 'pass',
      evidence: `DRA driver pod ${pod?.metadata.name} is ready on ${node}`,
    };
  return {
    id: `cluster.${node}.driver`,
    status: 'fail',
    evidence: pod
      ? `DRA driver pod ${pod.metadata.name} on ${node} is not ready`
      : `no DRA driver pod on ${node} (namespace ${DRA_DRIVER.namespace})`,
    fix: pod
      ? `kubectl -n ${DRA_DRIVER.namespace} logs ${pod.metadata.name}`
      : `check the node has the GPU node label and the namespace allows privileged pods (kubectl -n ${DRA_DRIVER.namespace} get events)`,
  };
}

function sliceCheck(node: GpuNode, listed: SliceDevice[], pod: KubeObject | undefined): Check {
  const id = `cluster.${node.name}.slice`;
  if (listed.length === 0)
    return {
      id,
      status: 'fail',
      evidence: `no ResourceSlice of ${DRA_DRIVER.driverName} lists a device on ${node.name}`,
      fix: `the driver found no Intel GPU there: ${pod ? `kubectl -n ${DRA_DRIVER.namespace} logs ${pod.metadata.name}` : `no driver pod runs on ${node.name} (kubectl -n ${DRA_DRIVER.namespace} get pods -o wide)`}; and igpu-split guest verify for its VM`,
    };
  const names = listed.map((d) => d.name).join(', ');
  return {
    id,
    status: listed.length === node.vgpus ? 'pass' : 'warn',
    evidence: `${node.name}'s ResourceSlice lists ${listed.length} device${listed.length === 1 ? '' : 's'} (${names})${listed.length === node.vgpus ? '' : `, expected ${node.vgpus} (one per ${node.vf ? 'VF' : 'vGPU'})`}`,
    ...(listed.length === node.vgpus ? {} : { fix: `run igpu-split vm verify for ${node.name}'s VM` }),
  };
}

/** The DeviceClass selects at least one of the node's devices. */
function classCheck(
  node: string,
  target: string,
  deviceClass: KubeObject | undefined,
  listed: SliceDevice[],
): Check {
  const id = `cluster.${node}.deviceclass`;
  if (!deviceClass)
    return {
      id,
      status: 'fail',
      evidence: `DeviceClass ${DRA_DRIVER.deviceClass} does not exist in cluster ${target}, so nothing on ${node} can be claimed`,
      fix: 'run igpu-split cluster apply (or install the driver chart in helm-values mode)',
    };
  const expressions = selectorsOf(deviceClass);
  const verdicts = listed.map((device) => expressions.map((e) => selects(e, DRA_DRIVER.driverName, device)));
  if (verdicts.some((v) => v.every((one) => one === true)))
    return {
      id,
      status: 'pass',
      evidence: `DeviceClass ${DRA_DRIVER.deviceClass} selects ${verdicts.filter((v) => v.every((one) => one === true)).length} of ${node}'s devices`,
    };
  if (verdicts.some((v) => v.includes(undefined)))
    return {
      id,
      status: 'warn',
      evidence: `DeviceClass ${DRA_DRIVER.deviceClass} has selectors igpu-split cannot evaluate (${clip(expressions.join(' && '), 120)})`,
      fix: `check by hand: kubectl get deviceclass ${DRA_DRIVER.deviceClass} -o yaml`,
    };
  return {
    id,
    status: 'fail',
    evidence: `DeviceClass ${DRA_DRIVER.deviceClass} selects none of ${node}'s devices (${clip(expressions.join(' && '), 120)})`,
    fix: `another driver's class has the name: kubectl get deviceclass ${DRA_DRIVER.deviceClass} -o yaml`,
  };
}

/** Verify's claim: one device of Intel's class, for administrative access. */
function adminClaim(named: { name: string; nodeLabel: string }, namespace: string): Manifest {
  return {
    apiVersion: RESOURCE_API,
    kind: 'ResourceClaim',
    metadata: {
      name: named.name,
      namespace,
      labels: { ...OURS, 'app.kubernetes.io/component': 'smoke', 'igpu-split.io/node': named.nodeLabel },
    },
    spec: {
      devices: {
        requests: [
          {
            name: 'gpu',
            exactly: {
              deviceClassName: DRA_DRIVER.deviceClass,
              allocationMode: 'ExactCount',
              count: 1,
              adminAccess: true,
            },
          },
        ],
      },
    },
  };
}

/** The smoke pod on an admin claim, with every claim's allocation compared around it. */
async function adminSmoke(
  kube: KubeApi,
  settings: KubernetesSettings,
  node: GpuNode,
  options: VerifyOptions,
): Promise<Check> {
  const namespace = settings.namespace;
  const named = smokeName(node.name);
  // Claims an interrupted verify left: they hold no device a workload needs (admin), but go.
  const leftovers = await kube.list(RESOURCE_API, 'ResourceClaim', {
    namespace,
    labelSelector: `app.kubernetes.io/component=smoke,igpu-split.io/node=${named.nodeLabel}`,
  });
  for (const old of leftovers) await kube.delete(RESOURCE_API, 'ResourceClaim', old.metadata.name, namespace);
  const smokeId = `cluster.${node.name}.smoke`;
  // Read first: the server's refusal names the label only deep in a message clipped to one line.
  const labels = (await kube.get('v1', 'Namespace', namespace))?.metadata.labels;
  if (labels?.[DRA_ADMIN_NAMESPACE_LABEL] !== 'true')
    return {
      id: smokeId,
      status: 'fail',
      evidence: `namespace ${namespace} lacks the label ${DRA_ADMIN_NAMESPACE_LABEL}=true, so verify's claim may not ask for adminAccess; no smoke pod ran`,
      fix:
        labels?.['app.kubernetes.io/managed-by'] === OURS['app.kubernetes.io/managed-by']
          ? 'run igpu-split cluster apply (it labels its namespace)'
          : `the namespace is yours: kubectl label namespace ${namespace} ${DRA_ADMIN_NAMESPACE_LABEL}=true (any claim in it may then ask for admin access), or give kubernetes.namespace a namespace of igpu-split's own`,
    };
  const claim = await kube.create(adminClaim(named, namespace)).catch((error: unknown) => {
    // expected: IgpuSplitError — the server refused the claim (a webhook, a quota): the smoke check fails with it; anything else is thrown
    if (error instanceof IgpuSplitError) return error;
    throw error;
  });
  if (claim instanceof IgpuSplitError)
    return {
      id: smokeId,
      status: 'fail',
      evidence: `the smoke claim on ${node.name} was refused: ${clip(claim.message, 160)}`,
      fix: `kubectl -n ${namespace} get resourceclaims`,
    };
  try {
    const stored = (
      claim.spec as { devices?: { requests?: { exactly?: { adminAccess?: boolean } }[] } } | undefined
    )?.devices?.requests?.[0]?.exactly?.adminAccess;
    if (stored !== true)
      return {
        id: smokeId,
        status: 'fail',
        evidence: `${kube.target} dropped adminAccess from verify's claim (the DRAAdminAccess feature gate is off), so a smoke pod would take a GPU from workloads; none ran`,
        fix: 'turn the feature gate on (kube-apiserver and kube-scheduler --feature-gates DRAAdminAccess=true; on by default from Kubernetes 1.34), or check the GPU by hand',
      };
    const limitMs = options.timeoutMs ?? 120_000;
    return await pollVisibly({ target: kube.target, what: `the smoke pod on ${node.name}`, limitMs }, () =>
      runSmokePod(
        kube,
        settings,
        node,
        options,
        {
          resources: { claims: [{ name: 'gpu' }] },
          resourceClaims: [{ name: 'gpu', resourceClaimName: named.name }],
        },
        named,
      ),
    );
  } finally {
    await kube.delete(RESOURCE_API, 'ResourceClaim', named.name, namespace);
  }
}

/** Every claim but verify's own kept its allocation. */
export async function allocationsCheck(
  kube: KubeApi,
  before: Map<string, string>,
  ours: (key: string) => boolean,
): Promise<Check> {
  const after = await allocations(kube);
  // A claim allocated or released meanwhile is the cluster's ordinary work; a claim whose
  // device changed under it is what verify must never cause.
  const changed = [...before].filter(([key, allocation]) => {
    const now = after.get(key);
    return !ours(key) && allocation !== '' && now !== undefined && now !== '' && now !== allocation;
  });
  if (changed.length > 0)
    return {
      id: 'cluster.allocations',
      status: 'fail',
      evidence: `claims changed allocation while verify ran: ${changed.map(([key, was]) => `${key} (${was || 'none'} → ${after.get(key) || 'none'})`).join('; ')}`,
      fix: 'an allocated claim does not move by itself: kubectl get resourceclaims -A -o wide, and the events of those claims',
    };
  const kept = [...before].filter(([key]) => !ours(key)).length;
  return {
    id: 'cluster.allocations',
    status: 'pass',
    evidence: `verify left every device's allocation as it was (${kept} claim${kept === 1 ? '' : 's'} compared before and after)`,
  };
}

/** Waits (bounded) until every GPU node has a ready driver pod and a slice with its devices. */
async function settle(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  settleMs: number,
  pollMs: number,
) {
  const deadline = Date.now() + settleMs;
  while (Date.now() < deadline) {
    const [pods, devices, nodes] = await Promise.all([
      driverPods(kube, settings),
      devicesByNode(kube),
      kube.list('v1', 'Node'),
    ]);
    const ready = gpuNodes.every(
      (node) =>
        !nodes.some((n) => n.metadata.name === node.name) ||
        (podReady(pods.find((p) => p.spec?.nodeName === node.name)) &&
          (devices.get(node.name)?.length ?? 0) > 0),
    );
    if (ready) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
