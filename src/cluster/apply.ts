// Applying the cluster plan (server-side apply as igpu-split: objects and node labels),
// rolling it back (delete exactly our objects, release our node labels), and draining a
// node for the other layers (cordon, evictions that honour PodDisruptionBudgets, a
// bounded wait naming the budget that blocks) and uncordoning it.

import type { KubernetesSettings } from '../config/lab.ts';
import { RefusedError, TargetError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import { pollVisibly } from '../core/waits.ts';
import { drainVerdict } from './drain-preflight.ts';
import { KindNotServed, type KubeApi } from './kube.ts';
import { allObjects, FIELD_MANAGER, OURS } from './objects.ts';
import type { ClusterPlan, GpuNode } from './plan.ts';
import { releaseProgress } from './progress.ts';

export async function applyClusterPlan(
  kube: KubeApi,
  plan: ClusterPlan,
  progress?: (line: string) => void,
): Promise<string[]> {
  if (plan.refused) {
    throw new RefusedError(`the cluster plan cannot be applied: ${plan.refused}`, {
      target: kube.target,
      fix: plan.checks.find((c) => c.status === 'fail')?.fix,
    });
  }
  const done: string[] = [];
  for (const step of plan.steps) {
    if (step.object) await kube.apply(step.object);
    if (step.node && step.labels) {
      await kube.apply({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: step.node, labels: step.labels },
      });
    }
    progress?.(step.description);
    done.push(step.id);
  }
  return done;
}

/** Deletes the objects we own (labelled ours) and releases the node labels we set, the rollout's too. */
export async function rollbackCluster(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
): Promise<string[]> {
  const done: string[] = [];
  for (const node of gpuNodes) {
    const existing = await kube.get('v1', 'Node', node.name);
    if (!existing) continue;
    // Only where our field manager holds something: a node we never labelled is left alone.
    const ours = (existing.metadata as { managedFields?: { manager?: string }[] }).managedFields?.some(
      (entry) => entry.manager === FIELD_MANAGER,
    );
    if (!ours) continue;
    // Applying nothing as our field manager gives up our labels; a label someone else
    // also set stays, as server-side apply keeps fields other managers own.
    await kube.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: node.name } });
    done.push(`released igpu-split's labels on node ${node.name}`);
  }
  // The rollout's label and annotation on every node, its ConfigMap and Lease (progress.ts).
  done.push(
    ...(await releaseProgress(
      kube,
      settings.namespace,
      gpuNodes.map((n) => n.name),
    )),
  );
  for (const object of allObjects(settings).reverse()) {
    const live = await kube
      .get(object.apiVersion, object.kind, object.metadata.name, object.metadata.namespace)
      .catch((error: unknown) => {
        // expected: KindNotServed — without its CRD there is no such object to delete; the rest is thrown
        if (error instanceof KindNotServed) return undefined;
        throw error;
      });
    if (
      !live ||
      live.metadata.labels?.['app.kubernetes.io/managed-by'] !== OURS['app.kubernetes.io/managed-by']
    )
      continue;
    await kube.delete(object.apiVersion, object.kind, object.metadata.name, object.metadata.namespace);
    done.push(`deleted ${object.kind} ${object.metadata.name}`);
  }
  return [...new Set(done)];
}

export interface DrainOptions {
  timeoutMs?: number;
  pollMs?: number;
}

/** Cordon, then evict every pod but DaemonSet and mirror pods; retried until the deadline. */
export function drainNode(kube: KubeApi, node: string, options: DrainOptions = {}): Promise<void> {
  const limitMs = options.timeoutMs ?? 300_000;
  return pollVisibly({ target: kube.target, what: `node ${node} to drain`, limitMs }, () =>
    drainUntil(kube, node, options),
  );
}

async function drainUntil(kube: KubeApi, node: string, options: DrainOptions): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 300_000);
  const pause = options.pollMs ?? 2_000;
  await kube.setUnschedulable(node, true);
  for (;;) {
    // One rule with the rollout's pre-flight (drain-preflight.ts drainVerdict): what is left,
    // what is evicted, and a pod no owner has, which kubectl drain also refuses.
    const pods = (await kube.list('v1', 'Pod', { fieldSelector: `spec.nodeName=${node}` })).filter(
      (pod) => drainVerdict(pod) !== 'skip',
    );
    if (pods.length === 0) return;
    const bare = pods.filter((pod) => drainVerdict(pod) === 'bare');
    if (bare.length > 0) {
      throw new TargetError(
        `node ${node} runs pods no controller owns (${bare.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).join(', ')}): evicting them would lose them`,
        {
          target: kube.target,
          fix: `move or delete them yourself (the node stays cordoned), then apply --resume; or kubectl uncordon ${node} to give up`,
        },
      );
    }
    const blocked: string[] = [];
    for (const pod of pods) {
      const result = await kube.evict(pod.metadata.namespace as string, pod.metadata.name);
      if (result.blocked) blocked.push(`${pod.metadata.namespace}/${pod.metadata.name}: ${result.blocked}`);
    }
    if (Date.now() > deadline) {
      throw new TargetError(
        `node ${node} did not drain in time${blocked.length ? `: ${blocked[0]}` : `: ${counted(pods.length, 'pod')} still there`}`,
        {
          target: kube.target,
          fix: `the node stays cordoned; scale up or relax the disruption budget, or move the pod, then rerun (or kubectl uncordon ${node} to give up)`,
        },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/** Waits, bounded, until the node reports Ready (after its VM or guest rebooted). */
export function waitNodeReady(kube: KubeApi, node: string, options: DrainOptions = {}): Promise<void> {
  const limitMs = options.timeoutMs ?? 600_000;
  return pollVisibly({ target: kube.target, what: `node ${node} to be Ready`, limitMs }, () =>
    readyUntil(kube, node, options),
  );
}

async function readyUntil(kube: KubeApi, node: string, options: DrainOptions): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  for (;;) {
    const live = await kube.get('v1', 'Node', node);
    const conditions =
      (live?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
    if (conditions.some((c) => c.type === 'Ready' && c.status === 'True')) return;
    if (Date.now() > deadline) {
      throw new TargetError(
        `node ${node} is not Ready after ${Math.round((options.timeoutMs ?? 600_000) / 1000)} s`,
        {
          target: kube.target,
          fix: `check the kubelet on it; it stays cordoned (kubectl uncordon ${node} once it is back), then apply --resume`,
        },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2_000));
  }
}

export async function uncordonNode(kube: KubeApi, node: string): Promise<void> {
  await kube.setUnschedulable(node, false);
}
