// The lab-wide last stage: the GPU plugin's objects and the GPU nodes' labels, once every
// node has its render device.

import { clusterLayer } from '../../cluster/layer.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, type StageContext } from './context.ts';

export function clusterStage({ plan, connections, lab }: StageContext): Stage[] {
  if (plan.cluster.steps.length === 0) return [];
  const layer = clusterLayer(connections.kube, lab.kubernetes, plan.gpuNodes);
  return [
    {
      id: 'lab/cluster',
      group: 'lab-end',
      fingerprint: fingerprintOf(plan.cluster.steps.map((s) => s.id)),
      title: 'cluster objects and node labels',
      run: async (say) => void (await layer.apply(plan.cluster, { say })),
    },
  ];
}
