// Before the first change: would each host's drain pass? The pods on the nodes a host's turn
// drains, read once, are judged as our drain (apply.ts drainNode) will treat them, and every
// PodDisruptionBudget that covers one of them is judged as the eviction API will. One check per
// host turn, `rollout.<host>.drain`; the drain itself still honours the budgets live.
//
// Sources (each read at the file and tag named):
// - which pods a drain leaves, and why a pod no controller owns is refused: kubernetes/kubectl
//   pkg/drain/filters.go @v0.34.1 (daemonSetFilter, mirrorPodFilter, unreplicatedFilter:
//   "cannot delete Pods that declare no controller (use --force to override)").
// - the eviction API: kubernetes/kubernetes pkg/registry/core/pod/storage/eviction.go (@277391e,
//   as stored): Pending and finished pods are deleted without a budget (canIgnorePDB); a pod
//   more than one budget covers is refused ("This pod has more than one PodDisruptionBudget,
//   which the eviction subresource does not support."); an unready pod passes when
//   currentHealthy ≥ desiredHealthy > 0 or the policy is AlwaysAllow; otherwise
//   status.disruptionsAllowed 0 refuses ("The disruption budget %s needs %d healthy pods and has
//   %d currently") and each eviction takes one; observedGeneration < generation refuses ("still
//   being processed").
// - the status fields: kubernetes/api policy/v1/types.go @v0.34.1 (PodDisruptionBudgetStatus);
//   how they are computed: kubernetes/kubernetes pkg/controller/disruption/disruption.go
//   (@003e862, as stored) getExpectedPodCount, countHealthyPods, updatePdbStatus.
// - selectors: kubernetes/apimachinery pkg/apis/meta/v1/helpers.go @v0.34.1
//   LabelSelectorAsSelector (null: nothing; {}: everything) and pkg/labels/selector.go
//   Requirement.Matches (NotIn matches a pod without the label).

import type { Check } from '../core/model.ts';
import { counted } from '../core/text.ts';
import type { KubeApi, KubeObject } from './kube.ts';

export interface SelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: SelectorRequirement[];
}

/** Whether a label selector picks these labels; null or an unknown operator picks nothing. */
export function selectorMatches(
  selector: LabelSelector | null | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector) return false;
  const has = (key: string) => labels !== undefined && Object.hasOwn(labels, key);
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);
  return (
    byLabel &&
    (selector.matchExpressions ?? []).every((r) => {
      const value = labels?.[r.key];
      const listed = value !== undefined && (r.values ?? []).includes(value);
      if (r.operator === 'In') return has(r.key) && listed;
      if (r.operator === 'NotIn') return !has(r.key) || !listed;
      if (r.operator === 'Exists') return has(r.key);
      if (r.operator === 'DoesNotExist') return !has(r.key);
      return false;
    })
  );
}

/**
 * What our drain does with a pod: `skip` (a DaemonSet's, a mirror pod, a finished pod), `bare`
 * (no owner at all: our drain refuses the node, as kubectl drain does without --force),
 * `uncontrolled` (owners, none of them its controller: our drain evicts it and nothing makes it
 * again; kubectl drain would refuse it), `evict`.
 */
export type DrainVerdict = 'skip' | 'bare' | 'uncontrolled' | 'evict';

interface OwnerReference {
  kind?: string;
  name?: string;
  controller?: boolean;
}

const ownersOf = (pod: KubeObject) => (pod.metadata.ownerReferences ?? []) as OwnerReference[];
const phaseOf = (pod: KubeObject) => (pod.status as { phase?: string } | undefined)?.phase;

export function drainVerdict(pod: KubeObject): DrainVerdict {
  const owners = ownersOf(pod);
  const annotations = (pod.metadata.annotations ?? {}) as Record<string, string>;
  const phase = phaseOf(pod);
  if (owners.some((o) => o.kind === 'DaemonSet')) return 'skip';
  if (annotations['kubernetes.io/config.mirror'] !== undefined) return 'skip';
  if (phase === 'Succeeded' || phase === 'Failed') return 'skip';
  if (owners.length === 0) return 'bare';
  return owners.some((o) => o.controller === true) ? 'evict' : 'uncontrolled';
}

/** One host's turn: the Kubernetes nodes the engine drains for it, in rollout order. */
export interface DrainTurn {
  host: string;
  nodes: string[];
}

/** What the pre-flight reads: pods (at least those on the drained nodes), budgets, nodes. */
export interface DrainFacts {
  pods: KubeObject[];
  budgets: KubeObject[];
  /** Every node, for where evicted pods could come back; absent: not judged. */
  nodes?: KubeObject[];
}

/** Lists pods on the drained nodes, every PodDisruptionBudget and the nodes, once. */
export async function gatherDrainFacts(kube: KubeApi, turns: readonly DrainTurn[]): Promise<DrainFacts> {
  const drained = [...new Set(turns.flatMap((t) => t.nodes))];
  if (drained.length === 0) return { pods: [], budgets: [] };
  const [pods, budgets, nodes] = await Promise.all([
    kube.list('v1', 'Pod'),
    kube.list('policy/v1', 'PodDisruptionBudget'),
    kube.list('v1', 'Node'),
  ]);
  return { pods, budgets, nodes };
}

interface BudgetStatus {
  disruptionsAllowed?: number;
  currentHealthy?: number;
  desiredHealthy?: number;
  expectedPods?: number;
  observedGeneration?: number;
}

interface BudgetSpec {
  selector?: LabelSelector | null;
  minAvailable?: number | string;
  maxUnavailable?: number | string;
  unhealthyPodEvictionPolicy?: string;
}

const specOf = (budget: KubeObject) => (budget.spec ?? {}) as BudgetSpec;
const statusOf = (budget: KubeObject) => (budget.status ?? {}) as BudgetStatus;
const nameOf = (o: KubeObject) => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;

export function podReady(pod: KubeObject): boolean {
  const conditions = (pod.status as { conditions?: { type: string; status: string }[] } | undefined)
    ?.conditions;
  return (conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/**
 * A percentage or count scaled to `total`, rounded up, as intstr.GetScaledValueFromIntOrPercent
 * with roundUp true (the disruption controller's call).
 */
export function scaled(value: number | string, total: number): number {
  if (typeof value === 'number') return value;
  const percent = /^(\d+)%$/.exec(value);
  return percent ? Math.ceil((Number(percent[1]) * total) / 100) : Number(value);
}

/**
 * Why a budget can never allow one eviction, however healthy its pods, or undefined:
 * maxUnavailable 0 (or a percentage that rounds to 0), or minAvailable at least all its pods.
 * `expected` is status.expectedPods (else the pods it covers).
 */
export function neverSatisfied(budget: KubeObject, expected: number): string | undefined {
  const spec = specOf(budget);
  if (spec.maxUnavailable !== undefined) {
    return expected > 0 && scaled(spec.maxUnavailable, expected) === 0
      ? `maxUnavailable ${spec.maxUnavailable} allows no eviction`
      : undefined;
  }
  if (spec.minAvailable === undefined || expected === 0) return undefined;
  const min = scaled(spec.minAvailable, expected);
  return min >= expected
    ? `minAvailable ${spec.minAvailable} with ${counted(expected, 'pod')} allows no eviction`
    : undefined;
}

/** Whether the eviction API checks this pod against its budget (eviction.go, see the head). */
function guarded(pod: KubeObject, budget: KubeObject): boolean {
  if (phaseOf(pod) !== 'Running' || pod.metadata.deletionTimestamp) return false;
  if (podReady(pod)) return true;
  const status = statusOf(budget);
  if (specOf(budget).unhealthyPodEvictionPolicy === 'AlwaysAllow') return false;
  const desired = status.desiredHealthy ?? 0;
  return !((status.currentHealthy ?? 0) >= desired && desired > 0);
}

/** Nodes an evicted pod could come back on: schedulable, not drained, its nodeSelector met. */
function homesFor(pod: KubeObject, nodes: readonly KubeObject[], drained: ReadonlySet<string>): number {
  const wanted = (pod.spec as { nodeSelector?: Record<string, string> } | undefined)?.nodeSelector;
  return nodes.filter(
    (n) =>
      !drained.has(n.metadata.name) &&
      !(n.spec as { unschedulable?: boolean } | undefined)?.unschedulable &&
      Object.entries(wanted ?? {}).every(([k, v]) => n.metadata.labels?.[k] === v),
  ).length;
}

interface Finding {
  status: 'warn' | 'fail';
  text: string;
  fix: string;
}

const drainFix = (node: string) =>
  `or drain it by hand first and resume: igpu-split cluster drain --node ${node} --yes`;

/** What one budget does to one host's drain, or nothing. */
function budgetFinding(
  budget: KubeObject,
  covered: readonly KubeObject[],
  drained: ReadonlySet<string>,
  facts: DrainFacts,
): Finding | undefined {
  const onDrained = covered.filter((p) => drained.has((p.spec as { nodeName?: string }).nodeName ?? ''));
  const evicted = onDrained.filter((p) => guarded(p, budget));
  if (evicted.length === 0) return undefined;
  const first = evicted[0] as KubeObject;
  const where = `node ${(first.spec as { nodeName?: string }).nodeName}, pod ${nameOf(first)}, PodDisruptionBudget ${nameOf(budget)}`;
  const status = statusOf(budget);
  const expected = status.expectedPods ?? covered.length;
  const never = neverSatisfied(budget, expected);
  const relax = `raise the PodDisruptionBudget's maxUnavailable (or lower minAvailable) or scale the workload up`;
  if (never)
    return {
      status: 'fail',
      text: `${where}: it can never be satisfied (${never})`,
      fix: `${relax}; a drain by hand waits on it too, so otherwise move the pod yourself (kubectl delete pod -n ${first.metadata.namespace ?? 'default'} ${first.metadata.name}: its controller starts it elsewhere, the budget is not asked)`,
    };
  const generation = budget.metadata.generation as number | undefined;
  if (status.disruptionsAllowed === undefined || (status.observedGeneration ?? 0) < (generation ?? 0))
    return {
      status: 'warn',
      text: `${where}: its status is not computed yet, so the eviction API refuses its pods until the disruption controller has seen it`,
      fix: 'wait for kube-controller-manager to update it (kubectl get pdb shows ALLOWED DISRUPTIONS), then plan again',
    };
  const allowed = status.disruptionsAllowed;
  if (allowed === 0)
    return {
      status: 'fail',
      text: `${where}: disruptionsAllowed is 0 (needs ${status.desiredHealthy ?? '?'} healthy pods and has ${status.currentHealthy ?? '?'})`,
      fix: `${relax}, or make its pods healthy, ${drainFix((first.spec as { nodeName?: string }).nodeName ?? '')}`,
    };
  if (evicted.length <= allowed) return undefined;
  // More evictions than allowed now: the rest wait for replacements to become healthy elsewhere.
  const stranded = facts.nodes ? evicted.filter((p) => homesFor(p, facts.nodes ?? [], drained) === 0) : [];
  if (stranded.length > 0)
    return {
      status: 'fail',
      text: `${where}: the drain evicts ${evicted.length} of its pods, it allows ${allowed}, and no node outside this turn can run their replacements`,
      fix: `${relax}, or add a node their nodeSelector allows, ${drainFix((first.spec as { nodeName?: string }).nodeName ?? '')}`,
    };
  return {
    status: 'warn',
    text: `${where}: the drain evicts ${evicted.length} of its pods and it allows ${allowed} at once: the drain waits for their replacements to become ready elsewhere`,
    fix: `${relax} if the drain should not wait`,
  };
}

/** What the pods themselves do to a host's drain: a pod no controller owns. */
function podFindings(host: string, pods: readonly KubeObject[]): Finding[] {
  return pods.flatMap((pod): Finding[] => {
    const node = (pod.spec as { nodeName?: string }).nodeName ?? '';
    const verdict = drainVerdict(pod);
    if (verdict === 'bare')
      return [
        {
          status: 'fail',
          text: `node ${node}, pod ${nameOf(pod)}: no controller owns it, so the drain refuses the node (kubectl drain: "cannot delete Pods that declare no controller")`,
          fix: `move it off ${node} or delete it (nothing would recreate it), or run it under a Deployment, then plan again; host ${host} waits for it`,
        },
      ];
    if (verdict === 'uncontrolled')
      return [
        {
          status: 'warn',
          text: `node ${node}, pod ${nameOf(pod)}: it has owners but no controller, so the drain evicts it and nothing makes it again`,
          fix: `run it under a controller (a Deployment, a StatefulSet) if it should come back after the drain of ${node}`,
        },
      ];
    return [];
  });
}

/** The budgets that cover a pod (same namespace, selector matching). */
function budgetsOf(pod: KubeObject, budgets: readonly KubeObject[]): KubeObject[] {
  return budgets.filter(
    (b) =>
      (b.metadata.namespace ?? 'default') === (pod.metadata.namespace ?? 'default') &&
      selectorMatches(specOf(b).selector, pod.metadata.labels),
  );
}

/** One check per host turn that drains nodes: pass, or every reason its drain would stop. */
export function drainPreflight(turns: readonly DrainTurn[], facts: DrainFacts): Check[] {
  return turns
    .filter((t) => t.nodes.length > 0)
    .map((turn) => {
      const drained = new Set(turn.nodes);
      const onNodes = facts.pods.filter((p) => drained.has((p.spec as { nodeName?: string }).nodeName ?? ''));
      const moving = onNodes.filter((p) => drainVerdict(p) !== 'skip');
      const findings = podFindings(turn.host, moving);
      const multiple = moving.filter(
        (p) => phaseOf(p) === 'Running' && budgetsOf(p, facts.budgets).length > 1,
      );
      for (const pod of multiple)
        findings.push({
          status: 'fail',
          text: `node ${(pod.spec as { nodeName?: string }).nodeName}, pod ${nameOf(pod)}: ${budgetsOf(pod, facts.budgets).map(nameOf).join(' and ')} both cover it, and the eviction API refuses a pod more than one PodDisruptionBudget covers`,
          fix: 'make the PodDisruptionBudgets cover disjoint pods (their selectors), then plan again',
        });
      const touched = facts.budgets.filter((b) => moving.some((p) => budgetsOf(p, [b]).length > 0));
      for (const budget of touched) {
        const covered = facts.pods.filter((p) => budgetsOf(p, [budget]).length > 0);
        const finding = budgetFinding(budget, covered, drained, facts);
        if (finding) findings.push(finding);
      }
      return checkOf(turn, findings);
    });
}

function checkOf(turn: DrainTurn, findings: readonly Finding[]): Check {
  const id = `rollout.${turn.host}.drain`;
  const nodes = turn.nodes.join(', ');
  if (findings.length === 0)
    return {
      id,
      status: 'pass',
      evidence: `host ${turn.host}: draining ${nodes} meets no blocking pod or disruption budget`,
    };
  const worst = findings.find((f) => f.status === 'fail') ?? (findings[0] as Finding);
  const others = findings.filter((f) => f !== worst);
  const more =
    others.length > 0 ? ` (and ${others.length} more: ${others.map((f) => f.text).join('; ')})` : '';
  return {
    id,
    status: worst.status,
    evidence: `host ${turn.host}${worst.status === 'fail' ? ' would block' : ': its drain meets'} ${worst.text}${more}`,
    fix: worst.fix,
  };
}
