// The cluster layer as one object the engine drives: the GPU plugin's objects and the
// GPU nodes' labels, through the Kubernetes API.

import type { GpuNode } from '../config/derived.ts';
import type { KubernetesSettings } from '../config/lab.ts';
import type { Layer } from '../core/model.ts';
import { applyClusterPlan } from './apply.ts';
import type { KubeApi } from './kube.ts';
import { type ClusterFacts, type ClusterPlan, gatherClusterFacts, planCluster } from './plan.ts';
import { type VerifyOptions, verifyCluster } from './verify.ts';

export function clusterLayer(
  kube: KubeApi,
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  verifyOptions: VerifyOptions = {},
): Layer<ClusterFacts, ClusterPlan, string[]> {
  return {
    name: 'cluster',
    gather: () => gatherClusterFacts(kube, settings, gpuNodes),
    plan: (facts) => planCluster(facts, settings, gpuNodes),
    apply: (plan, { say }) => applyClusterPlan(kube, plan, say),
    verify: () => verifyCluster(kube, settings, gpuNodes, verifyOptions),
  };
}
