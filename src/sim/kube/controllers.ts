// What the simulated cluster does on its own after each change: the Intel GPU device
// plugin's pods on matching nodes (from our DaemonSet, or from a GpuDevicePlugin when the
// operator is "installed") and the gpu.intel.com/i915 they advertise, Pod Security
// refusing privileged pods in a namespace that does not allow them, the scheduler
// (with its Insufficient … message), and the smoke pod's run and log. Intel's GPU DRA driver
// and Dynamic Resource Allocation live in dra-driver.ts and dra.ts; they are run from here.

import { SMOKE_MARK } from '../../cluster/smoke.ts';
import { GPU_MONITORING_RESOURCE, GPU_RESOURCE, GPU_RESOURCE_OF } from '../../knowledge/pins.ts';
import { admitEviction, syncBudgets } from './disruption.ts';
import {
  bindClaims,
  DRA_UNSCHEDULABLE,
  generateClaims,
  planClaims,
  releaseClaims,
  Unsupported,
} from './dra.ts';
import { nodeGpus, runDraDrivers } from './dra-driver.ts';
import { KINDS, type KubeObject, type KubeStore, type ResourceKind } from './store.ts';

export const RESOURCE = GPU_RESOURCE;
const kind = (name: string) => KINDS.find((k) => k.kind === name) as ResourceKind;
export const K = {
  Namespace: kind('Namespace'),
  Node: kind('Node'),
  Pod: kind('Pod'),
  DaemonSet: kind('DaemonSet'),
  PodDisruptionBudget: kind('PodDisruptionBudget'),
  CRD: kind('CustomResourceDefinition'),
  GpuDevicePlugin: kind('GpuDevicePlugin'),
};

export interface ClusterBehaviour {
  /** Pod Security level namespaces get when they say nothing (Talos enforces baseline). */
  defaultPodSecurity: 'privileged' | 'baseline';
  /** Intel GPUs (vGPUs) per node name. */
  gpus: Record<string, number>;
  /** The smoke image has vainfo and a working media driver. */
  vainfo: boolean;
  /**
   * The driver bound to the GPU per node name (absent: i915): the plugin advertises
   * gpu.intel.com/<driver> (intel-device-plugins v0.36.0 cmd/gpu_plugin/gpu_plugin.go).
   */
  drivers?: Record<string, 'i915' | 'xe'>;
  /** Feature gate DRAAdminAccess (kubernetes pkg/features/kube_features.go: beta, on by default from 1.34). */
  draAdminAccess?: boolean;
  /**
   * Per node name: false makes Intel's GPU DRA driver pod run there without ever publishing
   * its ResourceSlice (absent or true: it publishes one when the node has GPUs).
   */
  draSlices?: Record<string, boolean>;
  /** The PCI id of the GPU each node VM sees (absent: 0x46d1, an N100's), for the DRA driver's slice. */
  pciIds?: Record<string, string>;
}

/** The resource a node's plugin advertises. */
const resourceOn = (behaviour: ClusterBehaviour, node: string): string =>
  behaviour.drivers?.[node] === 'xe' ? GPU_RESOURCE_OF.xe : RESOURCE;

type Spec = Record<string, unknown>;
const spec = (o: KubeObject) => (o.spec ?? {}) as Spec;

function matches(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** -shared-dev-num=N (or the CR's sharedDevNum); the plugin's default is 1. */
function sharedDevNum(args: string[]): number {
  for (const [i, arg] of args.entries()) {
    const inline = /^--?shared-dev-num=(\d+)$/.exec(arg);
    if (inline) return Number(inline[1]);
    if (/^--?shared-dev-num$/.test(arg) && /^\d+$/.test(args[i + 1] ?? '')) return Number(args[i + 1]);
  }
  return 1;
}

/**
 * Whether the plugin advertises the one monitoring resource: `-enable-monitoring` (a Go bool
 * flag: also `=true`) and the default `-monitoring-mode=single`; the CR's enableMonitoring and
 * monitoringMode become the same flags (pkg/controllers/gpu/controller.go@v0.36.0 getPodArgs).
 * Split mode's per-driver resources are not simulated (igpu-split never asks for them).
 */
function monitoring(args: string[]): boolean {
  const on = args.some((arg) => /^--?enable-monitoring(=(true|1|t|T|TRUE|True))?$/.test(arg));
  const split = args.some(
    (arg, i) =>
      /^--?monitoring-mode=split$/.test(arg) || (/^--?monitoring-mode$/.test(arg) && args[i + 1] === 'split'),
  );
  return on && !split;
}

interface PluginSource {
  name: string;
  namespace: string;
  uid?: string;
  kind: string;
  nodeSelector?: Record<string, string>;
  shared: number;
  hostPath: boolean;
  monitoring: boolean;
}

function pluginSources(store: KubeStore): PluginSource[] {
  const sources: PluginSource[] = [];
  for (const ds of store.list(K.DaemonSet)) {
    const template = (spec(ds).template ?? {}) as {
      spec?: {
        containers?: { image?: string; args?: string[] }[];
        nodeSelector?: Record<string, string>;
        volumes?: { hostPath?: unknown }[];
      };
    };
    const container = template.spec?.containers?.find((c) => c.image?.includes('intel-gpu-plugin'));
    if (!container) continue;
    sources.push({
      name: ds.metadata.name,
      namespace: ds.metadata.namespace ?? 'default',
      uid: ds.metadata.uid,
      kind: 'DaemonSet',
      nodeSelector: template.spec?.nodeSelector,
      shared: sharedDevNum(container.args ?? []),
      monitoring: monitoring(container.args ?? []),
      hostPath: (template.spec?.volumes ?? []).some((v) => v.hostPath !== undefined),
    });
  }
  if (store.served(K.GpuDevicePlugin)) {
    for (const cr of store.list(K.GpuDevicePlugin)) {
      sources.push({
        name: `intel-gpu-plugin-${cr.metadata.name}`,
        namespace: 'inteldeviceplugins-system',
        uid: cr.metadata.uid,
        kind: 'GpuDevicePlugin',
        nodeSelector: spec(cr).nodeSelector as Record<string, string> | undefined,
        shared: Number(spec(cr).sharedDevNum ?? 1),
        monitoring: spec(cr).enableMonitoring === true && spec(cr).monitoringMode !== 'split',
        hostPath: true,
      });
    }
  }
  return sources;
}

function podSecurity(store: KubeStore, behaviour: ClusterBehaviour, namespace: string): string {
  return (
    store.get(K.Namespace, undefined, namespace)?.metadata.labels?.['pod-security.kubernetes.io/enforce'] ??
    behaviour.defaultPodSecurity
  );
}

export function reconcile(store: KubeStore, behaviour: ClusterBehaviour): void {
  const nodes = store.list(K.Node);
  const advertised = new Map<string, number>();
  const monitored = new Set<string>();
  const wantedPods = new Set<string>();
  for (const source of pluginSources(store))
    runPlugin(store, behaviour, source, nodes, { advertised, monitored }, wantedPods);
  // Plugin pods whose source is gone (or no longer allowed) go away.
  for (const pod of store.list(K.Pod)) {
    if (
      pod.metadata.labels?.app === 'intel-gpu-plugin' &&
      !wantedPods.has(`${pod.metadata.namespace}/${pod.metadata.name}`)
    )
      store.delete(K.Pod, pod.metadata.namespace, pod.metadata.name);
  }
  for (const node of nodes) {
    const name = node.metadata.name;
    advertise(store, node, advertised.get(name), resourceOn(behaviour, name));
    // One device "all" per node, whatever sharedDevNum (cmd/gpu_plugin/gpu_plugin.go@v0.36.0 scan).
    const now = store.get(K.Node, undefined, name) ?? node;
    advertise(store, now, monitored.has(name) ? 1 : undefined, GPU_MONITORING_RESOURCE);
  }
  runDraDrivers(store, nodes, {
    selects: (selector, node) => matches(selector, node.metadata.labels),
    admits: (namespace, privileged) =>
      !privileged || podSecurity(store, behaviour, namespace) === 'privileged',
    gpus: (node) => behaviour.gpus[node] ?? 0,
    driver: (node) => behaviour.drivers?.[node] ?? 'i915',
    pciId: (node) => behaviour.pciIds?.[node],
    publishes: (node) => behaviour.draSlices?.[node] !== false,
  });
  releaseClaims(store);
  schedule(store, behaviour);
  // A pod that finished at once (the smoke pod) releases its claims now, not at the next change.
  releaseClaims(store);
  syncBudgets(store);
}

/**
 * One plugin source: its pod on each node it selects (unless Pod Security refuses it),
 * what those nodes advertise, and a DaemonSet's counts.
 */
function runPlugin(
  store: KubeStore,
  behaviour: ClusterBehaviour,
  source: PluginSource,
  nodes: KubeObject[],
  { advertised, monitored }: { advertised: Map<string, number>; monitored: Set<string> },
  wantedPods: Set<string>,
): void {
  let ready = 0;
  let desired = 0;
  for (const node of nodes) {
    if (!matches(source.nodeSelector, node.metadata.labels)) continue;
    desired++;
    // hostPath volumes violate the baseline Pod Security level: the pod is refused.
    if (source.hostPath && podSecurity(store, behaviour, source.namespace) !== 'privileged') continue;
    const name = `${source.name}-${node.metadata.name}`;
    wantedPods.add(`${source.namespace}/${name}`);
    ready++;
    if (!store.get(K.Pod, source.namespace, name)) store.update(K.Pod, pluginPod(source, name, node));
    const gpus = behaviour.gpus[node.metadata.name] ?? 0;
    if (gpus > 0) advertised.set(node.metadata.name, gpus * source.shared);
    // The monitoring resource exists only when the scan found a GPU (same file, scan: len(monitor) > 0).
    if (gpus > 0 && source.monitoring) monitored.add(node.metadata.name);
  }
  if (source.kind !== 'DaemonSet') return;
  const ds = store.get(K.DaemonSet, source.namespace, source.name);
  const status = { desiredNumberScheduled: desired, numberReady: ready, currentNumberScheduled: ready };
  if (ds && JSON.stringify(ds.status) !== JSON.stringify(status))
    store.update(K.DaemonSet, { ...ds, status });
}

function pluginPod(source: PluginSource, name: string, node: KubeObject): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: source.namespace,
      labels: { app: 'intel-gpu-plugin' },
      // controller: true, as the DaemonSet controller sets it (kubectl drain finds DaemonSet pods by it).
      ownerReferences: [
        {
          apiVersion: source.kind === 'DaemonSet' ? 'apps/v1' : 'deviceplugin.intel.com/v1',
          kind: source.kind,
          name: source.name,
          uid: source.uid,
          controller: true,
        },
      ],
    },
    spec: {
      nodeName: node.metadata.name,
      containers: [{ name: 'intel-gpu-plugin', image: 'intel/intel-gpu-plugin' }],
    },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

/** The node's allocatable and capacity of the GPU resource: `count`, or none. */
function advertise(store: KubeStore, node: KubeObject, count: number | undefined, RESOURCE: string): void {
  const status = (node.status ?? {}) as {
    allocatable?: Record<string, string>;
    capacity?: Record<string, string>;
  };
  const current = status.allocatable?.[RESOURCE];
  if ((count === undefined ? undefined : String(count)) === current) return;
  const allocatable = { ...status.allocatable };
  const capacity = { ...status.capacity };
  if (count === undefined) {
    delete allocatable[RESOURCE];
    delete capacity[RESOURCE];
  } else {
    allocatable[RESOURCE] = String(count);
    capacity[RESOURCE] = String(count);
  }
  store.update(K.Node, { ...node, status: { ...status, allocatable, capacity } });
}

function gpuRequest(pod: KubeObject, RESOURCE: string): number {
  const containers = (spec(pod).containers ?? []) as {
    resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  }[];
  return containers.reduce(
    (sum, c) => sum + Number(c.resources?.limits?.[RESOURCE] ?? c.resources?.requests?.[RESOURCE] ?? 0),
    0,
  );
}

function schedule(store: KubeStore, behaviour: ClusterBehaviour): void {
  const nodes = store.list(K.Node);
  for (const listed of store.list(K.Pod)) {
    const status = (listed.status ?? {}) as { phase?: string };
    if (spec(listed).nodeName || (status.phase && status.phase !== 'Pending')) continue;
    const pod = generateClaims(store, listed);
    const placement = place(store, behaviour, pod, nodes);
    if ('message' in placement) {
      const conditions = [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: placement.message },
      ];
      if (JSON.stringify((pod.status as { conditions?: unknown })?.conditions) !== JSON.stringify(conditions))
        store.update(K.Pod, { ...pod, status: { ...(pod.status as Spec), phase: 'Pending', conditions } });
      continue;
    }
    const { fit, need, plans } = placement;
    // The DRA devices the pod's claims hold (allocated now or before) on its node.
    const held = plans ? bindClaims(store, pod, fit.metadata.name, plans).map((r) => r.device) : [];
    const smoke = pod.metadata.labels?.['app.kubernetes.io/component'] === 'smoke';
    const current = store.get(K.Pod, pod.metadata.namespace, pod.metadata.name) ?? pod;
    store.update(K.Pod, {
      ...current,
      spec: { ...spec(current), nodeName: fit.metadata.name },
      status: {
        ...(current.status as Spec),
        ...(smoke
          ? { phase: 'Succeeded', conditions: [{ type: 'PodScheduled', status: 'True' }] }
          : { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] }),
      },
    });
    if (smoke) {
      const all = nodeGpus(behaviour.gpus[fit.metadata.name] ?? 0, behaviour.pciIds?.[fit.metadata.name]);
      const indexes = need > 0 ? [0] : all.filter((g) => held.includes(g.name)).map((g) => g.index);
      store.logs.set(`${pod.metadata.namespace}/${pod.metadata.name}`, smokeLog(behaviour, indexes));
    }
  }
}

type Placement =
  | { fit: KubeObject; need: number; plans?: ReturnType<typeof planClaims> }
  | { message: string };

/** The node a pending pod goes to (with the DRA allocations to make), or the scheduler's message. */
function place(
  store: KubeStore,
  behaviour: ClusterBehaviour,
  pod: KubeObject,
  nodes: KubeObject[],
): Placement {
  const claims = ((spec(pod).resourceClaims ?? []) as unknown[]).length > 0;
  let need = 0;
  let insufficient = 0;
  let mismatch = 0;
  let cordoned = 0;
  let unallocatable = 0;
  let plans: ReturnType<typeof planClaims>;
  let fit: KubeObject | undefined;
  try {
    fit = nodes.find((node) => {
      if (!matches(spec(pod).nodeSelector as Record<string, string> | undefined, node.metadata.labels))
        return !++mismatch;
      if (spec(node).unschedulable) return !++cordoned;
      const RESOURCE = resourceOn(behaviour, node.metadata.name);
      need = gpuRequest(pod, RESOURCE);
      if (need > freeGpus(store, node, RESOURCE)) return !++insufficient;
      if (!claims) return true;
      plans = planClaims(store, pod, node.metadata.name);
      return plans ? true : !++unallocatable;
    });
  } catch (error) {
    // expected: Unsupported — a claim the simulator cannot evaluate: the pod stays pending, saying so
    if (!(error instanceof Unsupported)) throw error;
    return { message: `igpu-split simulator: ${error.message}` };
  }
  if (fit) return { fit, need, plans };
  const reasons = [
    insufficient ? `${insufficient} Insufficient ${RESOURCE}` : '',
    unallocatable ? `${unallocatable} ${DRA_UNSCHEDULABLE}` : '',
    mismatch ? `${mismatch} node(s) didn't match Pod's node affinity/selector` : '',
    cordoned ? `${cordoned} node(s) were unschedulable` : '',
  ].filter(Boolean);
  return { message: `0/${nodes.length} nodes are available: ${reasons.join(', ')}.` };
}

/** The node's allocatable GPU resource less what its unfinished pods request. */
function freeGpus(store: KubeStore, node: KubeObject, RESOURCE: string): number {
  const allocatable = Number(
    (node.status as { allocatable?: Record<string, string> } | undefined)?.allocatable?.[RESOURCE] ?? 0,
  );
  const used = store
    .list(K.Pod)
    .filter(
      (p) =>
        spec(p).nodeName === node.metadata.name &&
        !['Succeeded', 'Failed'].includes(String((p.status as { phase?: string })?.phase)),
    )
    .reduce((sum, p) => sum + gpuRequest(p, RESOURCE), 0);
  return allocatable - used;
}

/**
 * What the smoke script prints in a container given these GPUs (card<i>, renderD<128+i>):
 * the one the device plugin hands out, or those its DRA claims hold on the node.
 */
function smokeLog(behaviour: ClusterBehaviour, gpus: number[]): string {
  const dri = gpus.length > 0 ? `by-path ${gpus.map((i) => `card${i} renderD${128 + i} `).join('')}` : '';
  const render = `/dev/dri/renderD${128 + (gpus[0] ?? 0)}`;
  const lines = [`${SMOKE_MARK} dri: ${dri}`];
  if (gpus.length > 0) lines.push(`${SMOKE_MARK} open ${render} ok`);
  if (behaviour.vainfo && gpus.length > 0) {
    lines.push(
      `${SMOKE_MARK} vainfo ${render}`,
      `${SMOKE_MARK} | vainfo: VA-API version: 1.20 (libva 2.20.0)`,
      `${SMOKE_MARK} | vainfo: Driver version: Intel iHD driver for Intel(R) Gen Graphics - 24.1.0 ()`,
      `${SMOKE_MARK} | vainfo: Supported profile and entrypoints`,
      `${SMOKE_MARK} |       VAProfileH264Main               :	VAEntrypointVLD`,
      `${SMOKE_MARK} |       VAProfileH264Main               :	VAEntrypointEncSliceLP`,
      `${SMOKE_MARK} |       VAProfileHEVCMain               :	VAEntrypointVLD`,
    );
  } else {
    lines.push(`${SMOKE_MARK} vainfo: not in this image`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * POST …/pods/{name}/eviction: refused while a PodDisruptionBudget's status allows no
 * disruption (disruption.ts); a dry run deletes nothing.
 */
export function evict(store: KubeStore, namespace: string, name: string, dryRun = false): void {
  const pod = store.get(K.Pod, namespace, name);
  if (!pod) throw Object.assign(new Error(`pods "${name}" not found`), { code: 404 });
  admitEviction(store, pod);
  store.delete(K.Pod, namespace, name, { dryRun });
}
