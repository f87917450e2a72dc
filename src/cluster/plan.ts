// The cluster layer's gather and plan: the GPU nodes the lab file names (each VM is one
// vGPU), the objects we own as they are in the cluster, the CRDs operator and NFD modes
// need; then the node labels and objects to apply. An object is up to date when every
// field we set has our value (other fields — status, defaults — do not count).

import type { GpuNode } from '../config/derived.ts';
import type { KubernetesSettings } from '../config/lab.ts';
import type { Check, LayerPlan, Step } from '../core/model.ts';
import { DRA_ADMIN_NAMESPACE_LABEL } from '../knowledge/dra.ts';
import { CERT_MANAGER_CERTIFICATE, crdName, GPU_OPERATOR, NFD_RULE } from '../knowledge/pins.ts';
import type { KubeApi, KubeObject } from './kube.ts';
import { desiredObjects, type Manifest } from './objects.ts';
import { gatherPreflight, type Preflight, preflightChecks } from './preflight.ts';

export type { GpuNode };

export interface ClusterFacts {
  /** The API server it was read from (for the checks' words). */
  target?: string;
  nodes: Record<string, KubeObject | undefined>;
  objects: { desired: Manifest; live: KubeObject | undefined }[];
  crds: Record<string, boolean>;
  /** Version, APIs and allocators already present (preflight.ts); absent in facts made by hand. */
  preflight?: Preflight;
}

export type ClusterStep = Step & { object?: Manifest; node?: string; labels?: Record<string, string> };

export type ClusterPlan = LayerPlan<ClusterStep>;

export const CRDS = {
  gpuDevicePlugin: crdName(GPU_OPERATOR),
  certManager: crdName(CERT_MANAGER_CERTIFICATE),
  nodeFeatureRule: crdName(NFD_RULE),
};

const CRD_API = 'apiextensions.k8s.io/v1';

export async function gatherClusterFacts(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
): Promise<ClusterFacts> {
  // DRA mode reads the operator's CRD too: its custom resources say the device plugin runs.
  const crdNames = [
    ...(settings.plugin.mode === 'operator' || settings.allocator === 'dra' ? [CRDS.gpuDevicePlugin] : []),
    ...(settings.plugin.mode === 'operator' ? [CRDS.certManager] : []),
    ...(settings.plugin.nodeFeatureRule ? [CRDS.nodeFeatureRule] : []),
  ];
  const crds = Object.fromEntries(
    await Promise.all(
      crdNames.map(
        async (name) =>
          [name, (await kube.get(CRD_API, 'CustomResourceDefinition', name)) !== undefined] as const,
      ),
    ),
  );
  // One list instead of a read per node: a fleet has thousands. The nodes are read first: a
  // cluster that cannot be reached or read says so on the read every mode makes.
  const listed = new Map((await kube.list('v1', 'Node')).map((node) => [node.metadata.name, node]));
  const preflight = await gatherPreflight(kube, settings, gpuNodes, crds[CRDS.gpuDevicePlugin] === true);
  const nodes = Object.fromEntries(gpuNodes.map((node) => [node.name, listed.get(node.name)] as const));
  const wanted = desiredObjects(settings).filter(
    (o) =>
      !(o.kind === 'GpuDevicePlugin' && !crds[CRDS.gpuDevicePlugin]) &&
      !(o.kind === 'NodeFeatureRule' && !crds[CRDS.nodeFeatureRule]) &&
      // Without resource.k8s.io/v1 the plan is refused: none of the driver's objects is read.
      !(settings.allocator === 'dra' && !preflight.servesDra && o.metadata.name !== settings.namespace),
  );
  const objects = await Promise.all(
    wanted.map(async (desired) => ({
      desired,
      live: await kube.get(
        desired.apiVersion,
        desired.kind,
        desired.metadata.name,
        desired.metadata.namespace,
      ),
    })),
  );
  return { target: kube.target, nodes, objects, crds, preflight };
}

/** Every leaf of `want` has the same value in `have`. */
export function covers(have: unknown, want: unknown): boolean {
  if (want === null || typeof want !== 'object') return have === want;
  if (Array.isArray(want)) {
    return (
      Array.isArray(have) && have.length === want.length && want.every((item, i) => covers(have[i], item))
    );
  }
  if (!have || typeof have !== 'object') return false;
  return Object.entries(want as Record<string, unknown>).every(([key, value]) =>
    covers((have as Record<string, unknown>)[key], value),
  );
}

export function planCluster(
  facts: ClusterFacts,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
): ClusterPlan {
  const checks: Check[] = [
    ...(facts.preflight
      ? preflightChecks(facts.preflight, settings, facts.nodes, gpuNodes, facts.target ?? 'kubernetes')
      : []),
    ...crdChecks(facts, settings),
  ];
  const steps: ClusterStep[] = [];
  for (const { desired, live } of facts.objects) {
    if (live && covers(live, desired)) continue;
    if (
      desired.kind === 'Namespace' &&
      live &&
      live.metadata.labels?.['app.kubernetes.io/managed-by'] !== 'igpu-split'
    ) {
      checks.push(usersNamespace(desired, live, settings));
      continue;
    }
    steps.push(objectStep(desired, live));
  }
  for (const node of gpuNodes) {
    const live = facts.nodes[node.name];
    if (!live) {
      checks.push(missingNode(node.name));
      continue;
    }
    const step = labelStep(node.name, live, settings.plugin.nodeSelector);
    if (step) steps.push(step);
  }
  const refused = checks.find((c) => c.status === 'fail')?.evidence;
  return { checks, steps, ...(refused ? { refused } : {}) };
}

/** The CRDs operator mode and NodeFeatureRules need, as checks. */
function crdChecks(facts: ClusterFacts, settings: KubernetesSettings): Check[] {
  const checks: Check[] = settings.plugin.mode === 'operator' ? [operatorCheck(facts)] : [];
  if (settings.plugin.nodeFeatureRule && !facts.crds[CRDS.nodeFeatureRule]) {
    checks.push({
      id: 'cluster.nfd',
      status: 'fail',
      evidence: `CRD ${CRDS.nodeFeatureRule} is not installed: Node Feature Discovery is missing`,
      fix: 'install NFD (kubectl apply -k https://github.com/kubernetes-sigs/node-feature-discovery/deployment/overlays/default), or set nodeFeatureRule: false',
    });
  }
  return checks;
}

/** Intel's operator and the cert-manager its webhook needs. */
function operatorCheck(facts: ClusterFacts): Check {
  if (!facts.crds[CRDS.gpuDevicePlugin])
    return {
      id: 'cluster.operator',
      status: 'fail',
      evidence: `CRD ${CRDS.gpuDevicePlugin} is not installed: Intel's device plugin operator is missing`,
      fix: facts.crds[CRDS.certManager]
        ? 'install the operator: helm install dp-operator intel/intel-device-plugins-operator -n inteldeviceplugins-system --create-namespace'
        : 'install cert-manager first (the operator needs it), then: helm install dp-operator intel/intel-device-plugins-operator -n inteldeviceplugins-system --create-namespace; or use plugin mode daemonset',
    };
  if (!facts.crds[CRDS.certManager])
    return {
      id: 'cluster.cert-manager',
      status: 'fail',
      evidence: `CRD ${CRDS.certManager} is not installed: the operator's webhook needs cert-manager`,
      fix: 'install cert-manager (https://cert-manager.io/docs/installation/)',
    };
  return {
    id: 'cluster.operator',
    status: 'pass',
    evidence: "Intel's operator and cert-manager are installed",
  };
}

/**
 * The user's namespace: used as it is, never taken over (rollback would delete it). In DRA
 * mode the lab's namespace holds only verify's claims and pods, which need the admin-access
 * label; the driver's namespace, like the plugin's, needs Pod Security privileged.
 */
function usersNamespace(desired: Manifest, live: KubeObject, settings: KubernetesSettings): Check {
  const labels = live.metadata.labels ?? {};
  const name = desired.metadata.name;
  if (settings.allocator === 'dra' && name === settings.namespace) {
    const admin = labels[DRA_ADMIN_NAMESPACE_LABEL] === 'true';
    return {
      id: 'cluster.namespace',
      status: admin ? 'pass' : 'warn',
      evidence: `namespace ${name} exists and is not igpu-split's: used as it is${admin ? '' : `, without the label ${DRA_ADMIN_NAMESPACE_LABEL}=true verify's admin claims need`}`,
      ...(admin
        ? {}
        : {
            fix: `kubectl label namespace ${name} ${DRA_ADMIN_NAMESPACE_LABEL}=true (any claim in it may then ask for admin access to every device), or pick a namespace of igpu-split's own`,
          }),
    };
  }
  const level = labels['pod-security.kubernetes.io/enforce'];
  return {
    id: 'cluster.namespace',
    status: level === 'privileged' ? 'pass' : 'warn',
    evidence: `namespace ${name} exists and is not igpu-split's: used as it is${level === 'privileged' ? '' : ` (Pod Security enforce: ${level ?? 'the cluster default'})`}`,
    ...(level === 'privileged'
      ? {}
      : {
          fix: `the ${settings.allocator === 'dra' ? 'driver' : 'plugin'} mounts host paths: label it pod-security.kubernetes.io/enforce=privileged, or pick a namespace of igpu-split's own`,
        }),
  };
}

function objectStep(desired: Manifest, live: KubeObject | undefined): ClusterStep {
  return {
    id: `cluster/${desired.kind.toLowerCase()}/${desired.metadata.name}`,
    target: `${desired.kind} ${desired.metadata.namespace ? `${desired.metadata.namespace}/` : ''}${desired.metadata.name}`,
    description: `${live ? 'update' : 'create'} ${desired.kind} ${desired.metadata.name} (server-side apply as igpu-split)`,
    disturbs: [],
    object: desired,
  };
}

/** The node selector's labels the node lacks, as one step; undefined when it has them all. */
function labelStep(
  name: string,
  live: KubeObject,
  selector: Record<string, string>,
): ClusterStep | undefined {
  const missing = Object.entries(selector).filter(([k, v]) => live.metadata.labels?.[k] !== v);
  if (missing.length === 0) return undefined;
  return {
    id: `cluster/node/${name}/labels`,
    target: `node ${name}`,
    description: `label node ${name}: ${missing.map(([k, v]) => `${k}=${v}`).join(', ')}`,
    disturbs: [],
    node: name,
    labels: selector,
  };
}

export function missingNode(name: string): Check {
  return {
    id: `cluster.${name}.node`,
    status: 'fail',
    evidence: `Kubernetes has no node ${name}`,
    fix: 'check kubernetesNode in the lab file against kubectl get nodes (and that the VM has joined)',
  };
}
