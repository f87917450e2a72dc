// The disruption controller and the eviction API of the simulated cluster: each
// PodDisruptionBudget's status as kube-controller-manager writes it, and evictions judged
// against that status as the API server judges them.
//
// Read from kubernetes/kubernetes pkg/controller/disruption/disruption.go (@003e862, as stored):
// getExpectedPodCount (maxUnavailable or a percentage minAvailable: expectedPods is the sum of the
// pods' controllers' scale; an integer minAvailable: the pods the selector picks), countHealthyPods
// (Ready and not being deleted), updatePdbStatus (disruptionsAllowed = currentHealthy −
// desiredHealthy, 0 when negative or when expectedPods is 0); and pkg/registry/core/pod/storage/
// eviction.go (@277391e, as stored): canIgnorePDB, more than one budget, the unready-pod rule and
// checkAndDecrement's messages. Field meanings: kubernetes/api policy/v1/types.go @v0.34.1.
//
// Not simulated: no ReplicaSet or StatefulSet exists here, so a controller's scale is the most
// pods with its uid the simulator has seen (an evicted pod is not made again, and its controller
// still counts it); DisruptedPods and the DisruptionAllowed condition are not written.

import { type LabelSelector, podReady, scaled, selectorMatches } from '../../cluster/drain-preflight.ts';
import { KINDS, type KubeObject, type KubeStore, type ResourceKind } from './store.ts';

const kind = (name: string) => KINDS.find((k) => k.kind === name) as ResourceKind;
const POD = kind('Pod');
const PDB = kind('PodDisruptionBudget');

interface BudgetSpec {
  selector?: LabelSelector | null;
  minAvailable?: number | string;
  maxUnavailable?: number | string;
  unhealthyPodEvictionPolicy?: string;
}

interface BudgetStatus {
  observedGeneration: number;
  disruptionsAllowed: number;
  currentHealthy: number;
  desiredHealthy: number;
  expectedPods: number;
}

/** The most pods seen per controller uid, per store: the scale of controllers not simulated. */
const scales = new WeakMap<KubeStore, Map<string, number>>();

function controllerOf(pod: KubeObject): string | undefined {
  const owners = (pod.metadata.ownerReferences ?? []) as {
    uid?: string;
    name?: string;
    controller?: boolean;
  }[];
  const owner = owners.find((o) => o.controller === true);
  return owner ? (owner.uid ?? owner.name) : undefined;
}

function rememberScales(store: KubeStore): Map<string, number> {
  const seen = scales.get(store) ?? new Map<string, number>();
  scales.set(store, seen);
  const now = new Map<string, number>();
  for (const pod of store.list(POD)) {
    const uid = controllerOf(pod);
    if (uid) now.set(uid, (now.get(uid) ?? 0) + 1);
  }
  for (const [uid, count] of now) seen.set(uid, Math.max(seen.get(uid) ?? 0, count));
  return seen;
}

const specOf = (budget: KubeObject) => (budget.spec ?? {}) as BudgetSpec;

function podsOf(store: KubeStore, budget: KubeObject): KubeObject[] {
  return store
    .list(POD, budget.metadata.namespace)
    .filter((p) => selectorMatches(specOf(budget).selector, p.metadata.labels));
}

/** The status the disruption controller computes for one budget. */
export function budgetStatus(
  budget: KubeObject,
  pods: readonly KubeObject[],
  scale: ReadonlyMap<string, number>,
): BudgetStatus {
  const spec = specOf(budget);
  // The sum of the pods' controllers' scale (getExpectedScale); pods without one are left out.
  const controllers = new Set(pods.flatMap((p) => controllerOf(p) ?? []));
  const byScale = [...controllers].reduce((sum, uid) => sum + (scale.get(uid) ?? 0), 0);
  let expectedPods = 0;
  let desiredHealthy = 0;
  if (spec.maxUnavailable !== undefined) {
    expectedPods = byScale;
    desiredHealthy = Math.max(0, expectedPods - scaled(spec.maxUnavailable, expectedPods));
  } else if (typeof spec.minAvailable === 'number') {
    expectedPods = pods.length;
    desiredHealthy = spec.minAvailable;
  } else if (typeof spec.minAvailable === 'string') {
    expectedPods = byScale;
    desiredHealthy = scaled(spec.minAvailable, expectedPods);
  }
  const currentHealthy = pods.filter((p) => !p.metadata.deletionTimestamp && podReady(p)).length;
  const allowed = currentHealthy - desiredHealthy;
  return {
    observedGeneration: Number(budget.metadata.generation ?? 1),
    disruptionsAllowed: expectedPods <= 0 || allowed <= 0 ? 0 : allowed,
    currentHealthy,
    desiredHealthy,
    expectedPods,
  };
}

/** Writes every budget's status where it changed (the disruption controller's sync). */
export function syncBudgets(store: KubeStore): void {
  const scale = rememberScales(store);
  for (const budget of store.list(PDB)) {
    const status = budgetStatus(budget, podsOf(store, budget), scale);
    const old = (budget.status ?? {}) as Partial<BudgetStatus>;
    if (Object.entries(status).every(([k, v]) => old[k as keyof BudgetStatus] === v)) continue;
    store.update(PDB, { ...budget, status: { ...(budget.status ?? {}), ...status } });
  }
}

const refusal = (code: number, reason: string, message: string, details?: unknown) =>
  Object.assign(new Error(message), { code, reason, ...(details ? { details } : {}) });

/**
 * Whether the eviction API lets this pod go (throws its Status otherwise): pods finished or
 * Pending go without a budget; more than one budget is refused; an unready pod goes when its
 * budget is healthy; else disruptionsAllowed must be above 0.
 */
export function admitEviction(store: KubeStore, pod: KubeObject): void {
  const phase = (pod.status as { phase?: string } | undefined)?.phase;
  if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending' || pod.metadata.deletionTimestamp)
    return;
  const budgets = store
    .list(PDB, pod.metadata.namespace)
    .filter((b) => selectorMatches(specOf(b).selector, pod.metadata.labels));
  if (budgets.length > 1)
    throw refusal(
      500,
      'InternalError',
      'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.',
    );
  const budget = budgets[0];
  if (!budget) return;
  const status = (budget.status ?? {}) as Partial<BudgetStatus>;
  if (!podReady(pod)) {
    if (specOf(budget).unhealthyPodEvictionPolicy === 'AlwaysAllow') return;
    const desired = status.desiredHealthy ?? 0;
    if ((status.currentHealthy ?? 0) >= desired && desired > 0) return;
  }
  if ((status.disruptionsAllowed ?? 0) > 0) return;
  throw refusal(429, 'TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.", {
    causes: [
      {
        reason: 'DisruptionBudget',
        message: `The disruption budget ${budget.metadata.name} needs ${status.desiredHealthy ?? 0} healthy pods and has ${status.currentHealthy ?? 0} currently`,
      },
    ],
  });
}
