// Intel's GPU DRA driver in the simulated cluster: when a DaemonSet runs the image
// ghcr.io/intel/intel-resource-drivers-for-kubernetes/intel-gpu-resource-driver (Intel's
// kustomize base at gpu-v0.11.0: deployments/gpu/base/resource-driver.yaml), its pod runs
// on each node its nodeSelector picks (unless Pod Security refuses the privileged pod) and
// publishes one ResourceSlice per node that has GPUs, as the kubelet plugin does.
//
// The slice follows intel/intel-resource-drivers-for-kubernetes at tag gpu-v0.11.0:
// - cmd/kubelet-gpu-plugin/node_state.go GetResources: the attributes model, family, driver,
//   sriov (MaxVFs > 0), type, pciId, pciAddress, health, resource.kubernetes.io/pcieRoot,
//   resource.kubernetes.io/pciBusID and the deprecated pciRoot (the bus part of pcieRoot);
//   capacity memory (`<MemoryMiB>Mi`) and millicores (1000, DecimalSI: "1k").
// - pkg/gpu/device/device.go and pkg/helpers/device.go DeviceUIDFromPCIinfo: the device name
//   is the PCI address and the PCI id with colons and the dot replaced by hyphens
//   (0000:00:02.0 + 0x46d1 → 0000-00-02-0-0x46d1); DriverName gpu.intel.com.
// - pkg/gpu/device/models.go ModelDetails: model and family by PCI id, else "Unknown".
// - pkg/gpu/discovery/discovery-pci.go: type "gpu" (presumed; a VF with a physfn becomes
//   "vf" — a VM's VF has none), health "Unknown" without xpumd (device.go Health: no
//   entries), MemoryMiB 0 until memory.go asks the DRM driver for its device-local
//   (I915_MEMORY_CLASS_DEVICE / XE VRAM) regions: an integrated GPU has none, so 0 ("0").
// The pool is the node's (name = node, generation 1, one slice), as the kubelet plugin
// helper publishes a node-local pool; the slice's name and owner (the Node) follow
// k8s.io/dynamic-resource-allocation resourceslice's `<node>-<driver>-<random>`.

import { randomBytes } from 'node:crypto';
import { KINDS, type KubeObject, type KubeStore, type ResourceKind } from './store.ts';

export const DRA_DRIVER_NAME = 'gpu.intel.com';
export const DRA_DRIVER_IMAGE =
  'ghcr.io/intel/intel-resource-drivers-for-kubernetes/intel-gpu-resource-driver';

const kind = (name: string) => KINDS.find((k) => k.kind === name) as ResourceKind;
const Pod = kind('Pod');
const DaemonSet = kind('DaemonSet');
const ResourceSlice = kind('ResourceSlice');

/** pkg/gpu/device/models.go ModelDetails (gpu-v0.11.0): the integrated GPUs it names. */
const MODELS: Record<string, { model: string; family: string }> = {
  '0x4626': { model: 'Alder Lake-P', family: 'Iris Xe' },
  '0x7d67': { model: 'Arrow Lake-S', family: 'Intel Graphics' },
  '0xa7a0': { model: 'Raptor Lake-P', family: 'Iris Xe' },
};

/** The iGPU (or its VF) a node VM sees, by default: an N100's 8086:46d1 (src/demo/lab.ts). */
export const DEFAULT_PCI_ID = '0x46d1';

/** The image's repository: the reference without its tag or digest. */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0] ?? image;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

export interface NodeGpu {
  /** Device name in the slice. */
  name: string;
  pciAddress: string;
  /** The card and render node the device has in the VM (card<i>, renderD<128+i>). */
  index: number;
}

/** The GPUs of a node VM: PCI 0000:00:02.0, 0000:00:03.0, … */
export function nodeGpus(count: number, pciId = DEFAULT_PCI_ID): NodeGpu[] {
  return Array.from({ length: count }, (_, index) => {
    const pciAddress = `0000:00:${(2 + index).toString(16).padStart(2, '0')}.0`;
    return { name: `${pciAddress.replaceAll(':', '-').replaceAll('.', '-')}-${pciId}`, pciAddress, index };
  });
}

/** The device entries of a node's slice, as GetResources builds them. */
export function sliceDevices(count: number, driver: 'i915' | 'xe', pciId = DEFAULT_PCI_ID): unknown[] {
  const details = MODELS[pciId] ?? { model: 'Unknown', family: 'Unknown' };
  return nodeGpus(count, pciId).map((gpu) => ({
    name: gpu.name,
    attributes: {
      model: { string: details.model },
      family: { string: details.family },
      driver: { string: driver },
      sriov: { bool: false },
      type: { string: 'gpu' },
      pciId: { string: pciId },
      pciAddress: { string: gpu.pciAddress },
      health: { string: 'Unknown' },
      pciRoot: { string: '00' },
      'resource.kubernetes.io/pcieRoot': { string: 'pci0000:00' },
      'resource.kubernetes.io/pciBusID': { string: gpu.pciAddress },
    },
    capacity: { memory: { value: '0' }, millicores: { value: '1k' } },
  }));
}

interface Driver {
  ds: KubeObject;
  namespace: string;
  nodeSelector?: Record<string, string>;
  privileged: boolean;
}

interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec?: {
    containers?: { name?: string; image?: string; securityContext?: { privileged?: boolean } }[];
    nodeSelector?: Record<string, string>;
    volumes?: { hostPath?: unknown }[];
  };
}

function drivers(store: KubeStore): Driver[] {
  return store.list(DaemonSet).flatMap((ds) => {
    const template = ((ds.spec as { template?: PodTemplate } | undefined)?.template ?? {}) as PodTemplate;
    const containers = template.spec?.containers ?? [];
    if (!containers.some((c) => c.image && imageRepository(c.image) === DRA_DRIVER_IMAGE)) return [];
    return [
      {
        ds,
        namespace: ds.metadata.namespace ?? 'default',
        nodeSelector: template.spec?.nodeSelector,
        // privileged containers and hostPath volumes both need the privileged Pod Security level.
        privileged:
          containers.some((c) => c.securityContext?.privileged === true) ||
          (template.spec?.volumes ?? []).some((v) => v.hostPath !== undefined),
      },
    ];
  });
}

export interface DraDriverContext {
  /** The nodes a DaemonSet with this nodeSelector runs on. */
  selects: (selector: Record<string, string> | undefined, node: KubeObject) => boolean;
  /** Whether Pod Security lets a (privileged) pod run in the namespace. */
  admits: (namespace: string, privileged: boolean) => boolean;
  gpus: (node: string) => number;
  driver: (node: string) => 'i915' | 'xe';
  pciId: (node: string) => string | undefined;
  /** false: the driver runs on the node but never publishes a slice. */
  publishes: (node: string) => boolean;
}

/** The driver pods, their DaemonSets' counts, and the slices: one per node with GPUs whose driver pod runs. */
export function runDraDrivers(store: KubeStore, nodes: KubeObject[], context: DraDriverContext): void {
  const wantedPods = new Set<string>();
  const publishing = new Set<string>();
  for (const driver of drivers(store)) {
    let desired = 0;
    let ready = 0;
    for (const node of nodes) {
      if (!context.selects(driver.nodeSelector, node)) continue;
      desired++;
      if (!context.admits(driver.namespace, driver.privileged)) continue;
      ready++;
      const name = `${driver.ds.metadata.name}-${node.metadata.name}`;
      wantedPods.add(`${driver.namespace}/${name}`);
      if (!store.get(Pod, driver.namespace, name)) store.update(Pod, driverPod(driver, name, node));
      if (context.gpus(node.metadata.name) > 0 && context.publishes(node.metadata.name))
        publishing.add(node.metadata.name);
    }
    const status = { desiredNumberScheduled: desired, numberReady: ready, currentNumberScheduled: ready };
    const ds = store.get(DaemonSet, driver.namespace, driver.ds.metadata.name);
    if (ds && JSON.stringify(ds.status) !== JSON.stringify(status))
      store.update(DaemonSet, { ...ds, status });
  }
  for (const pod of store.list(Pod)) {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const containers = (pod.spec as { containers?: { image?: string }[] } | undefined)?.containers ?? [];
    const driverPod = containers.some((c) => c.image && imageRepository(c.image) === DRA_DRIVER_IMAGE);
    if (driverPod && !wantedPods.has(key)) store.delete(Pod, pod.metadata.namespace, pod.metadata.name);
  }
  publishSlices(store, nodes, publishing, context);
}

function publishSlices(
  store: KubeStore,
  nodes: KubeObject[],
  publishing: Set<string>,
  context: DraDriverContext,
): void {
  const ours = store
    .list(ResourceSlice)
    .filter((s) => (s.spec as { driver?: string })?.driver === DRA_DRIVER_NAME);
  for (const slice of ours) {
    const node = (slice.spec as { nodeName?: string }).nodeName ?? '';
    if (!publishing.has(node)) store.delete(ResourceSlice, undefined, slice.metadata.name);
  }
  for (const node of nodes) {
    const name = node.metadata.name;
    if (!publishing.has(name)) continue;
    const existing = ours.find((s) => (s.spec as { nodeName?: string }).nodeName === name);
    const spec = {
      driver: DRA_DRIVER_NAME,
      nodeName: name,
      pool: { name, generation: 1, resourceSliceCount: 1 },
      devices: sliceDevices(context.gpus(name), context.driver(name), context.pciId(name)),
    };
    if (existing && JSON.stringify(existing.spec) === JSON.stringify(spec)) continue;
    store.update(ResourceSlice, {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceSlice',
      metadata: {
        name: existing?.metadata.name ?? `${name}-${DRA_DRIVER_NAME}-${randomSuffix()}`,
        ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata.uid, controller: true }],
      },
      spec,
    });
  }
}

/** apiserver pkg/storage/names SimpleNameGenerator: 5 random characters of bcdfghjklmnpqrstvwxz2456789. */
export function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
}

function driverPod(driver: Driver, name: string, node: KubeObject): KubeObject {
  const template = ((driver.ds.spec as { template?: PodTemplate } | undefined)?.template ??
    {}) as PodTemplate;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: driver.namespace,
      labels: template.metadata?.labels,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          name: driver.ds.metadata.name,
          uid: driver.ds.metadata.uid,
          controller: true,
        },
      ],
    },
    spec: {
      nodeName: node.metadata.name,
      containers: (template.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image })),
    },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}
