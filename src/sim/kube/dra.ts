// Dynamic Resource Allocation (resource.k8s.io/v1, Kubernetes 1.34) in the simulated
// cluster: the registry's admission of ResourceClaims and ResourceClaimTemplates, the
// resourceclaim controller (claims from templates, reservations and deallocation after
// their pods) and the scheduler's DynamicResources plugin (allocating devices from
// ResourceSlices). Read from kubernetes/kubernetes (release-1.34 code, the copies in the
// search index) and k8s.io/api v0.34.1:
// - pkg/registry/resource/resourceclaim/strategy.go and resourceclaimtemplate/strategy.go
//   dropDisabledDRAAdminAccessFields: with the DRAAdminAccess gate off, exactly.adminAccess
//   (and a claim's status results' adminAccess) are dropped unless the old object used them.
// - pkg/registry/resource/utils.go AuthorizedForAdmin (the version reading
//   requests[i].Exactly): field.Forbidden at spec.devices.requests[i].adminAccess, "admin access
//   to devices requires the `resource.kubernetes.io/admin-access: true` label on the containing
//   namespace" (label key: k8s.io/api resource/v1/types.go DRAAdminNamespaceLabelKey @v0.34.1).
//   Checked here when an object is created (its spec is immutable).
// - k8s.io/api resource/v1/types.go @v0.34.1 ExactDeviceRequest.AdminAccess: admin claims
//   "ignore all ordinary claims to the device with respect to access modes and any resource
//   allocations".
// - pkg/controller/resourceclaim/controller.go: a template's claim is named
//   `<pod>-<pod claim name>-<5 random>` with the pod as controlling owner and the annotation
//   resource.kubernetes.io/pod-claim-name, recorded in the pod's status.resourceClaimStatuses;
//   syncClaim drops reservations of pods that are gone or done and deallocates a claim left
//   with none; a claim made for a pod goes when the pod is done or gone.
// - pkg/scheduler/framework/plugins/dynamicresources: a node where the claims cannot be
//   allocated is filtered out with "cannot allocate all claims"; the allocator's result
//   names request, driver, pool and device, and selects the node by metadata.name.
// CEL is evaluated only in two forms: `device.driver == "<driver>"` and
// `device.attributes["<domain>"].<name> == "<value>"` (either quote; also true/false);
// anything else leaves the pod unschedulable with a message saying the simulator does not
// evaluate it.

import { randomSuffix } from './dra-driver.ts';
import { KINDS, KubeError, type KubeObject, type KubeStore, type ResourceKind } from './store.ts';

const kind = (name: string) => KINDS.find((k) => k.kind === name) as ResourceKind;
export const DRA = {
  Namespace: kind('Namespace'),
  Pod: kind('Pod'),
  DeviceClass: kind('DeviceClass'),
  ResourceSlice: kind('ResourceSlice'),
  ResourceClaim: kind('ResourceClaim'),
  ResourceClaimTemplate: kind('ResourceClaimTemplate'),
};

/** k8s.io/api resource/v1/types.go DRAAdminNamespaceLabelKey (v0.34.1). */
export const ADMIN_NAMESPACE_LABEL = 'resource.kubernetes.io/admin-access';
/** pkg/controller/resourceclaim: the annotation naming the pod's claim entry. */
const POD_CLAIM_ANNOTATION = 'resource.kubernetes.io/pod-claim-name';
export const DRA_UNSCHEDULABLE = 'cannot allocate all claims';

interface ExactRequest {
  deviceClassName?: string;
  selectors?: { cel?: { expression?: string } }[];
  allocationMode?: string;
  count?: number;
  adminAccess?: boolean;
}
interface DeviceRequest {
  name: string;
  exactly?: ExactRequest;
  firstAvailable?: unknown[];
}
interface AllocationResult {
  request: string;
  driver: string;
  pool: string;
  device: string;
  adminAccess?: boolean;
}
interface ClaimStatus {
  allocation?: {
    devices?: { results?: AllocationResult[] };
    nodeSelector?: { nodeSelectorTerms?: { matchFields?: { key: string; values?: string[] }[] }[] };
  };
  reservedFor?: { resource: string; name: string; uid?: string }[];
}

const requestsOf = (kindName: string, object: KubeObject | undefined): DeviceRequest[] => {
  const spec = object?.spec as
    | { devices?: { requests?: DeviceRequest[] }; spec?: { devices?: { requests?: DeviceRequest[] } } }
    | undefined;
  return (kindName === 'ResourceClaim' ? spec?.devices?.requests : spec?.spec?.devices?.requests) ?? [];
};

/** The store's admission for resource.k8s.io: the DRAAdminAccess gate and the namespace label. */
export function draAdmission(store: KubeStore, gate: () => boolean) {
  return (target: ResourceKind, next: KubeObject, existing: KubeObject | undefined): void => {
    if (target.kind !== 'ResourceClaim' && target.kind !== 'ResourceClaimTemplate') return;
    const requests = requestsOf(target.kind, next);
    if (!gate()) {
      const inUse = requestsOf(target.kind, existing).some((r) => r.exactly?.adminAccess !== undefined);
      if (inUse) return;
      for (const r of requests) delete r.exactly?.adminAccess;
      for (const result of (next.status as ClaimStatus | undefined)?.allocation?.devices?.results ?? [])
        delete result.adminAccess;
      return;
    }
    if (existing) return;
    const index = requests.findIndex((r) => r.exactly?.adminAccess === true);
    if (index < 0) return;
    const namespace = store.get(DRA.Namespace, undefined, next.metadata.namespace ?? '');
    if (namespace?.metadata.labels?.[ADMIN_NAMESPACE_LABEL] === 'true') return;
    const field = `spec.devices.requests[${index}].adminAccess`;
    const message = `Forbidden: admin access to devices requires the \`${ADMIN_NAMESPACE_LABEL}: true\` label on the containing namespace`;
    // apimachinery errors.NewInvalid: `<Kind>.<group> "<name>" is invalid: <field>: <message>`.
    throw new KubeError(
      422,
      'Invalid',
      `${target.kind}.${target.group} "${next.metadata.name}" is invalid: ${field}: ${message}`,
      {
        name: next.metadata.name,
        group: target.group,
        kind: target.kind,
        causes: [{ reason: 'FieldValueForbidden', message, field }],
      },
    );
  };
}

type Spec = Record<string, unknown>;
const spec = (o: KubeObject | undefined) => (o?.spec ?? {}) as Spec;
interface PodClaim {
  name: string;
  resourceClaimName?: string;
  resourceClaimTemplateName?: string;
}
const podClaims = (pod: KubeObject) => (spec(pod).resourceClaims ?? []) as PodClaim[];
const phase = (pod: KubeObject) => (pod.status as { phase?: string } | undefined)?.phase;
const isDone = (pod: KubeObject) => phase(pod) === 'Succeeded' || phase(pod) === 'Failed';

/**
 * The resourceclaim controller's part before scheduling: a claim for each template entry
 * of the pod (and the pod's status.resourceClaimStatuses naming it). Returns the pod as
 * now stored.
 */
export function generateClaims(store: KubeStore, pod: KubeObject): KubeObject {
  const statuses = ((pod.status as { resourceClaimStatuses?: { name: string; resourceClaimName: string }[] })
    ?.resourceClaimStatuses ?? []) as { name: string; resourceClaimName: string }[];
  const missing = podClaims(pod).filter(
    (c) => c.resourceClaimTemplateName && !statuses.some((s) => s.name === c.name),
  );
  if (missing.length === 0) return pod;
  const added = [...statuses];
  for (const entry of missing) {
    const template = store.get(
      DRA.ResourceClaimTemplate,
      pod.metadata.namespace,
      entry.resourceClaimTemplateName ?? '',
    );
    if (!template) continue;
    const templateSpec = (template.spec ?? {}) as {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec?: unknown;
    };
    const name = `${pod.metadata.name}-${entry.name}-${randomSuffix()}`;
    try {
      store.create(DRA.ResourceClaim, {
        apiVersion: 'resource.k8s.io/v1',
        kind: 'ResourceClaim',
        metadata: {
          name,
          namespace: pod.metadata.namespace,
          labels: templateSpec.metadata?.labels,
          annotations: { ...templateSpec.metadata?.annotations, [POD_CLAIM_ANNOTATION]: entry.name },
          ownerReferences: [
            {
              apiVersion: 'v1',
              kind: 'Pod',
              name: pod.metadata.name,
              uid: pod.metadata.uid,
              controller: true,
            },
          ],
        },
        spec: structuredClone(templateSpec.spec ?? {}),
      });
    } catch (error) {
      // expected: KubeError — admission refused the claim (the namespace lost its admin label): no claim, the pod waits
      if (!(error instanceof KubeError)) throw error;
      continue;
    }
    added.push({ name: entry.name, resourceClaimName: name });
  }
  if (added.length === statuses.length) return pod;
  return store.update(DRA.Pod, { ...pod, status: { ...(pod.status as Spec), resourceClaimStatuses: added } });
}

/** The claim a pod entry refers to: by name, or the one generated from its template. */
function claimName(pod: KubeObject, entry: PodClaim): string | undefined {
  if (entry.resourceClaimName) return entry.resourceClaimName;
  const statuses = (pod.status as { resourceClaimStatuses?: { name: string; resourceClaimName?: string }[] })
    ?.resourceClaimStatuses;
  return statuses?.find((s) => s.name === entry.name)?.resourceClaimName;
}

type Cel = { driver: string } | { domain: string; attribute: string; value: string | boolean };

/** The two CEL forms the simulator evaluates; undefined for any other expression. */
export function parseCel(expression: string): Cel | undefined {
  const literal = `(?:"([^"]*)"|'([^']*)'|(true|false))`;
  const driver = /^\s*device\.driver\s*==\s*(?:"([^"]*)"|'([^']*)')\s*$/.exec(expression);
  if (driver) return { driver: driver[1] ?? driver[2] ?? '' };
  const attribute = new RegExp(
    String.raw`^\s*device\.attributes\[\s*(?:"([^"]+)"|'([^']+)')\s*\]\.([A-Za-z][A-Za-z0-9_]*)\s*==\s*${literal}\s*$`,
  ).exec(expression);
  if (!attribute) return undefined;
  const value = attribute[6] !== undefined ? attribute[6] === 'true' : (attribute[4] ?? attribute[5] ?? '');
  return { domain: attribute[1] ?? attribute[2] ?? '', attribute: attribute[3] ?? '', value };
}

interface Device {
  name: string;
  attributes?: Record<string, { string?: string; bool?: boolean; int?: number; version?: string }>;
}

function celMatches(cel: Cel, driver: string, device: Device): boolean {
  if ('driver' in cel) return driver === cel.driver;
  const attributes = device.attributes ?? {};
  // An attribute without a domain is in the driver's own domain.
  const found =
    attributes[`${cel.domain}/${cel.attribute}`] ??
    (cel.domain === driver ? attributes[cel.attribute] : undefined);
  if (!found) return false;
  return (found.string ?? found.bool ?? found.version ?? found.int) === cel.value;
}

export class Unsupported extends Error {}

/** The CEL expressions a request's devices must satisfy: its class's and its own. */
function expressions(store: KubeStore, request: ExactRequest): string[] | undefined {
  const deviceClass = store.get(DRA.DeviceClass, undefined, request.deviceClassName ?? '');
  if (!deviceClass) return undefined;
  const classSelectors = ((deviceClass.spec as { selectors?: ExactRequest['selectors'] })?.selectors ??
    []) as NonNullable<ExactRequest['selectors']>;
  return [...classSelectors, ...(request.selectors ?? [])].map((s) => s.cel?.expression ?? '');
}

interface Plan {
  claim: KubeObject;
  results: AllocationResult[];
}

/**
 * Whether all the pod's claims can be allocated (or are already, on this node): the plan
 * of new allocations, or undefined when they cannot. Throws Unsupported for what the
 * simulator does not evaluate (CEL beyond its two forms, firstAvailable).
 */
export function planClaims(store: KubeStore, pod: KubeObject, node: string): Plan[] | undefined {
  const plans: Plan[] = [];
  const taken = takenDevices(store);
  for (const entry of podClaims(pod)) {
    const name = claimName(pod, entry);
    const claim = name ? store.get(DRA.ResourceClaim, pod.metadata.namespace, name) : undefined;
    if (!claim) return undefined;
    const status = (claim.status ?? {}) as ClaimStatus;
    if (status.allocation) {
      const nodes = status.allocation.nodeSelector?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values;
      if (nodes && !nodes.includes(node)) return undefined;
      continue;
    }
    const results = allocate(store, claim, node, taken);
    if (!results) return undefined;
    plans.push({ claim, results });
  }
  return plans;
}

/** driver/pool/device of every device an ordinary (not admin) allocated claim holds. */
function takenDevices(store: KubeStore): Set<string> {
  const taken = new Set<string>();
  for (const claim of store.list(DRA.ResourceClaim)) {
    for (const r of (claim.status as ClaimStatus | undefined)?.allocation?.devices?.results ?? [])
      if (!r.adminAccess) taken.add(`${r.driver}/${r.pool}/${r.device}`);
  }
  return taken;
}

function allocate(
  store: KubeStore,
  claim: KubeObject,
  node: string,
  taken: Set<string>,
): AllocationResult[] | undefined {
  const results: AllocationResult[] = [];
  const slices = store.list(DRA.ResourceSlice).filter((s) => spec(s).nodeName === node);
  for (const request of requestsOf('ResourceClaim', claim)) {
    if (!request.exactly)
      throw new Unsupported(`request ${request.name}: firstAvailable is not simulated, only exactly`);
    const exact = request.exactly;
    const celTexts = expressions(store, exact);
    if (!celTexts) return undefined;
    const cels = celTexts.map((text) => {
      const cel = parseCel(text);
      if (!cel)
        throw new Unsupported(
          `CEL expression ${JSON.stringify(text)} is not one the simulator evaluates (only device.driver == "…" and device.attributes["<domain>"].<name> == "…")`,
        );
      return cel;
    });
    const admin = exact.adminAccess === true;
    const candidates = slices.flatMap((slice) => {
      const { driver, pool } = spec(slice) as { driver: string; pool: { name: string } };
      return ((spec(slice).devices ?? []) as Device[])
        .filter((device) => cels.every((cel) => celMatches(cel, driver, device)))
        .map((device) => ({ driver, pool: pool.name, device: device.name }))
        .filter((d) => admin || !taken.has(`${d.driver}/${d.pool}/${d.device}`));
    });
    const all = exact.allocationMode === 'All';
    const count = all ? candidates.length : (exact.count ?? 1);
    if (count === 0 || candidates.length < count) return undefined;
    for (const d of candidates.slice(0, count)) {
      results.push({ request: request.name, ...d, ...(admin ? { adminAccess: true } : {}) });
      if (!admin) taken.add(`${d.driver}/${d.pool}/${d.device}`);
    }
  }
  return results;
}

/** The scheduler's Reserve and PreBind: allocations written, every claim reserved for the pod. */
export function bindClaims(
  store: KubeStore,
  pod: KubeObject,
  node: string,
  plans: Plan[],
): AllocationResult[] {
  const held: AllocationResult[] = [];
  for (const entry of podClaims(pod)) {
    const name = claimName(pod, entry);
    const claim = name ? store.get(DRA.ResourceClaim, pod.metadata.namespace, name) : undefined;
    if (!claim) continue;
    const status = (claim.status ?? {}) as ClaimStatus;
    const plan = plans.find((p) => p.claim.metadata.name === claim.metadata.name);
    const allocation = plan
      ? {
          devices: { results: plan.results },
          nodeSelector: {
            nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }],
          },
        }
      : status.allocation;
    const reservedFor = [
      ...(status.reservedFor ?? []).filter((r) => r.uid !== pod.metadata.uid),
      { resource: 'pods', name: pod.metadata.name, uid: pod.metadata.uid as string },
    ];
    store.update(DRA.ResourceClaim, { ...claim, status: { ...status, allocation, reservedFor } });
    held.push(...(allocation?.devices?.results ?? []));
  }
  return held;
}

/**
 * The resourceclaim controller after pods: reservations of pods gone or done are dropped, a
 * claim left unreserved is deallocated, and a claim made for a pod goes with it.
 */
export function releaseClaims(store: KubeStore): void {
  const pods = new Map(store.list(DRA.Pod).map((p) => [`${p.metadata.namespace}/${p.metadata.uid}`, p]));
  const live = (namespace: string | undefined, uid: string | undefined) => {
    const pod = pods.get(`${namespace}/${uid}`);
    return pod !== undefined && !isDone(pod);
  };
  for (const claim of store.list(DRA.ResourceClaim)) {
    const owner = claim.metadata.ownerReferences?.find((o) => o.kind === 'Pod' && o.controller);
    if (owner && !live(claim.metadata.namespace, owner.uid)) {
      store.delete(DRA.ResourceClaim, claim.metadata.namespace, claim.metadata.name);
      continue;
    }
    const status = (claim.status ?? {}) as ClaimStatus;
    const reserved = status.reservedFor ?? [];
    const valid = reserved.filter((r) => r.resource !== 'pods' || live(claim.metadata.namespace, r.uid));
    if (valid.length === reserved.length) continue;
    const next: ClaimStatus = { ...status, reservedFor: valid };
    if (valid.length === 0) {
      delete next.reservedFor;
      delete next.allocation;
    }
    store.update(DRA.ResourceClaim, { ...claim, status: next });
  }
}
