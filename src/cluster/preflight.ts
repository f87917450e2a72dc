// What the cluster must offer before the cluster layer changes anything: a Kubernetes
// release that serves the allocator (DRA: 1.34+, resource.k8s.io/v1), CDI in every GPU
// node's container runtime (DRA hands devices over as CDI devices), and one allocator only:
// the device plugin and the DRA driver would each hand the same GPU out, so neither is
// installed while the other runs. Every refusal is one line naming the cluster or node and
// what would work; nothing is applied while one stands.

import type { GpuNode } from '../config/derived.ts';
import type { KubernetesSettings } from '../config/lab.ts';
import { IgpuSplitError } from '../core/errors.ts';
import type { Check } from '../core/model.ts';
import {
  CDI,
  DRA_DRIVER,
  DRA_IMAGE_NAME,
  DRA_RELEASES,
  DRA_SINCE,
  PLUGIN_IMAGE_NAME,
  runsImage,
} from '../knowledge/dra.ts';
import { RESOURCE_API } from './dra-objects.ts';
import { devicesByNode, selectorsOf } from './dra-verify.ts';
import { KindNotServed, type KubeApi, type KubeObject, type ServerVersion } from './kube.ts';
import { OURS } from './manifest.ts';

export interface Preflight {
  server: ServerVersion;
  /** resource.k8s.io/v1 is served. */
  servesDra: boolean;
  /** What shows each allocator runs: `DaemonSet kube-system/intel-gpu-plugin (igpu-split’s)`. */
  devicePlugin: string[];
  draDriver: string[];
  /** Device-plugin mode: a read the cluster refused (RBAC), so the other allocator could not be looked for. */
  unread?: string;
  /** The live DeviceClass of the driver's name, when there is one. */
  deviceClass?: KubeObject;
}

const [DRA_MAJOR, DRA_MINOR] = DRA_SINCE;

const ours = (object: KubeObject) =>
  object.metadata.labels?.['app.kubernetes.io/managed-by'] === OURS['app.kubernetes.io/managed-by'];
const where = (object: KubeObject) =>
  `${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}${ours(object) ? ' (igpu-split’s)' : ''}`;

function images(daemonSet: KubeObject): string[] {
  const template = (daemonSet.spec?.template ?? {}) as { spec?: { containers?: { image?: string }[] } };
  return (template.spec?.containers ?? []).map((c) => c.image ?? '');
}

/**
 * What the cluster runs, read before planning. In device-plugin mode only the DRA driver is
 * looked for, and a refused read (RBAC) becomes a warning: plans that worked before DRA
 * mode existed keep working with the same rights.
 */
export async function gatherPreflight(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  operatorCrd: boolean,
): Promise<Preflight> {
  const [server, servesDra] = await Promise.all([kube.version(), kube.serves('resource.k8s.io', 'v1')]);
  const dra = settings.allocator === 'dra';
  try {
    const daemonSets = await kube.list('apps/v1', 'DaemonSet');
    const running = (matches: (image: string) => boolean) =>
      daemonSets.filter((ds) => images(ds).some(matches)).map(where);
    const devicePlugin = dra ? running((i) => runsImage(i, settings.plugin.image, PLUGIN_IMAGE_NAME)) : [];
    const draDriver = dra ? [] : running((i) => runsImage(i, settings.dra.image, DRA_IMAGE_NAME));
    if (dra && operatorCrd) {
      const crs = await kube.list('deviceplugin.intel.com/v1', 'GpuDevicePlugin').catch((error: unknown) => {
        // expected: KindNotServed — the CRD went away between the reads; no custom resources then
        if (error instanceof KindNotServed) return [];
        throw error;
      });
      devicePlugin.push(...crs.map(where));
    }
    if (!servesDra) return { server, servesDra, devicePlugin, draDriver };
    const deviceClass = dra ? await kube.get(RESOURCE_API, 'DeviceClass', DRA_DRIVER.deviceClass) : undefined;
    if (!dra) {
      // Only the lab's GPU nodes count: the driver may serve other GPUs of the cluster.
      const names = new Set(gpuNodes.map((n) => n.name));
      const publishing = [...(await devicesByNode(kube)).keys()].filter((node) => names.has(node));
      if (publishing.length > 0)
        draDriver.push(`ResourceSlices of ${DRA_DRIVER.driverName} on ${publishing.sort().join(', ')}`);
    }
    return { server, servesDra, devicePlugin, draDriver, ...(deviceClass ? { deviceClass } : {}) };
  } catch (error) {
    // expected: IgpuSplitError in device-plugin mode — a refused look for the DRA driver is a warning; DRA mode needs the reads, so it is thrown
    if (dra || !(error instanceof IgpuSplitError)) throw error;
    return { server, servesDra, devicePlugin: [], draDriver: [], unread: error.oneLine() };
  }
}

/** The pre-flight's checks for the lab's allocator. */
export function preflightChecks(
  pre: Preflight,
  settings: KubernetesSettings,
  nodes: Record<string, KubeObject | undefined>,
  gpuNodes: readonly GpuNode[],
  target: string,
): Check[] {
  return settings.allocator === 'dra'
    ? draChecks(pre, settings, nodes, gpuNodes, target)
    : devicePluginChecks(pre, target);
}

function devicePluginChecks(pre: Preflight, target: string): Check[] {
  if (pre.unread)
    return [
      {
        id: 'cluster.allocator',
        status: 'warn',
        evidence: `could not look for Intel's GPU DRA driver in cluster ${target}: ${pre.unread}`,
        fix: 'make sure it does not run on the GPU nodes: two allocators would hand out the same GPU',
      },
    ];
  const theirs = pre.draDriver;
  if (theirs.length === 0) return [];
  const stale = theirs.every((t) => t.startsWith('ResourceSlices'));
  return [
    {
      id: 'cluster.allocator',
      status: 'fail',
      evidence: `cluster ${target} already runs Intel's GPU DRA driver (${theirs.join('; ')}): with the device plugin too, both would hand out the same GPU`,
      fix: theirs.some((t) => t.includes('igpu-split'))
        ? 'run igpu-split cluster rollback to remove the DRA driver igpu-split installed, then apply again; or set kubernetes.allocator: dra'
        : stale
          ? `no driver DaemonSet runs, only its slices are left: wait for the kubelets to remove them, or kubectl delete resourceslices --field-selector spec.driver=${DRA_DRIVER.driverName}`
          : 'remove that DRA driver (kubectl delete the DaemonSet named, or helm uninstall its release), or set kubernetes.allocator: dra',
    },
  ];
}

function draChecks(
  pre: Preflight,
  settings: KubernetesSettings,
  nodes: Record<string, KubeObject | undefined>,
  gpuNodes: readonly GpuNode[],
  target: string,
): Check[] {
  const { server } = pre;
  if (!Number.isInteger(server.major) || !Number.isInteger(server.minor))
    return [
      {
        id: 'cluster.version',
        status: 'fail',
        evidence: `cluster ${target} reports version ${JSON.stringify(server.gitVersion)}, which names no Kubernetes release; allocator dra needs ${DRA_MAJOR}.${DRA_MINOR} or later`,
        fix: `check the API server (kubectl version), or set kubernetes.allocator: device-plugin`,
      },
    ];
  const old = server.major < DRA_MAJOR || (server.major === DRA_MAJOR && server.minor < DRA_MINOR);
  if (old)
    return [
      {
        id: 'cluster.version',
        status: 'fail',
        evidence: `cluster ${target} runs Kubernetes ${server.gitVersion}; allocator dra needs ${DRA_MAJOR}.${DRA_MINOR} or later (resource.k8s.io/v1)`,
        fix: `upgrade the cluster to Kubernetes ${DRA_MAJOR}.${DRA_MINOR} (K3s ${DRA_RELEASES.k3s}; Talos ${DRA_RELEASES.talos}: ${DRA_RELEASES.talosChecked} installs Kubernetes ${DRA_RELEASES.talosKubernetes}), or set kubernetes.allocator: device-plugin`,
      },
    ];
  if (!pre.servesDra)
    return [
      {
        id: 'cluster.version',
        status: 'fail',
        evidence: `cluster ${target} runs Kubernetes ${server.gitVersion} but does not serve ${RESOURCE_API}`,
        fix: 'turn the API on (kube-apiserver --runtime-config resource.k8s.io/v1=true; K3s: kube-apiserver-arg), or set kubernetes.allocator: device-plugin',
      },
    ];
  const checks: Check[] = [
    {
      id: 'cluster.version',
      status: 'pass',
      evidence: `Kubernetes ${server.gitVersion} serves ${RESOURCE_API}`,
    },
  ];
  const plugin = pre.devicePlugin;
  if (plugin.length > 0)
    checks.push({
      id: 'cluster.allocator',
      status: 'fail',
      evidence: `cluster ${target} already runs Intel's GPU device plugin (${plugin.join('; ')}): with the DRA driver too, both would hand out the same GPU`,
      fix: plugin.some((p) => p.includes('igpu-split'))
        ? 'run igpu-split cluster rollback to remove the device plugin igpu-split installed (pods lose gpu.intel.com/i915), then apply again'
        : 'remove the device plugin first (kubectl delete the DaemonSet or GpuDevicePlugin named), or set kubernetes.allocator: device-plugin',
    });
  const classCheck = deviceClassCheck(pre.deviceClass, settings, target);
  if (classCheck) checks.push(classCheck);
  for (const node of gpuNodes) {
    const live = nodes[node.name];
    if (live) checks.push(cdiCheck(node.name, live));
  }
  return checks;
}

/** The driver's DeviceClass name already taken: by another driver, or by an install that is not ours. */
function deviceClassCheck(
  live: KubeObject | undefined,
  settings: KubernetesSettings,
  target: string,
): Check | undefined {
  if (!live || ours(live)) return undefined;
  const expressions = selectorsOf(live);
  const intels = expressions.some(
    (e) => e.replace(/\s+/g, '') === `device.driver=="${DRA_DRIVER.driverName}"`,
  );
  if (!intels)
    return {
      id: 'cluster.deviceclass',
      status: 'fail',
      evidence: `DeviceClass ${DRA_DRIVER.deviceClass} in cluster ${target} exists and selects ${expressions.join(' && ') || 'nothing'}: another driver uses the name Intel's driver needs`,
      fix: `find its owner (kubectl get deviceclass ${DRA_DRIVER.deviceClass} -o yaml) and remove or rename it; igpu-split never overwrites it`,
    };
  if (settings.plugin.mode === 'helm-values') return undefined;
  return {
    id: 'cluster.deviceclass',
    status: 'fail',
    evidence: `DeviceClass ${DRA_DRIVER.deviceClass} in cluster ${target} is not igpu-split's: Intel's driver is installed another way (Helm?)`,
    fix: 'keep that install and set kubernetes.plugin.mode: helm-values (igpu-split then verifies it), or remove it and apply again',
  };
}

/** CDI in the node's runtime, from the version its kubelet reports. */
export function cdiCheck(name: string, node: KubeObject): Check {
  const info = (node.status as { nodeInfo?: Record<string, string> } | undefined)?.nodeInfo ?? {};
  const runtime = info.containerRuntimeVersion ?? '';
  const talos = /^Talos /.test(info.osImage ?? '');
  const id = `cluster.${name}.cdi`;
  const containerd = /^containerd:\/\/v?(\d+)\./.exec(runtime);
  if (containerd && Number(containerd[1]) >= CDI.containerdDefaultOnSince)
    return {
      id,
      status: 'pass',
      evidence: `${name} runs ${runtime}: CDI is on by default in containerd 2${talos ? ' (Talos 1.13+ also sets it in /etc/cri/conf.d/00-base.part)' : ''}`,
    };
  const where = talos
    ? `a machine-config file under ${CDI.talosDir} (enable_cdi = true), or upgrade to Talos ${CDI.talosOnSince.join('.')}`
    : `${CDI.k3sTemplate} (K3s) or /etc/containerd/config.toml: enable_cdi = true, then restart the runtime`;
  if (containerd)
    return {
      id,
      status: 'fail',
      evidence: `${name} runs ${runtime}: containerd 1.x leaves CDI off, and DRA hands devices over as CDI devices`,
      fix: `turn CDI on in ${where}; or upgrade the runtime to containerd 2`,
    };
  return {
    id,
    status: 'warn',
    evidence: `${name} runs ${runtime || 'an unreported runtime'}: igpu-split cannot tell whether CDI is on`,
    fix: "check the node's container runtime has CDI turned on",
  };
}
