// The mapping layer as one object the engine drives: the cluster PCI mapping the VMs
// attach their vGPU through.

import type { Check, Layer } from '../core/model.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { applyMappingPlan } from './apply.ts';
import { gatherMappingFacts, type MappingFacts, type MappingPlan, planMapping } from './plan.ts';

export function mappingLayer(
  api: ProxmoxApi,
  name: string,
  nodes: readonly string[],
): Layer<MappingFacts, MappingPlan, { changed: boolean }> {
  const gather = () => gatherMappingFacts(api, name, nodes);
  return {
    name: `mapping ${name}`,
    gather,
    plan: planMapping,
    apply: (plan) => applyMappingPlan(api, plan),
    // Verified by planning again: a mapping as wanted leaves nothing to do.
    verify: async () => {
      const plan = planMapping(await gather());
      const failing = plan.checks.filter((check) => check.status !== 'pass');
      const left: Check[] =
        plan.steps.length === 0
          ? [
              {
                id: `mapping.${name}`,
                status: 'pass',
                evidence: `mapping ${name} has an entry for every GPU host`,
              },
            ]
          : [
              {
                id: `mapping.${name}`,
                status: 'fail',
                evidence: `mapping ${name} is not as planned: ${plan.steps.map((s) => s.description).join('; ')}`,
                fix: 'run igpu-split mapping apply',
              },
            ];
      return [...failing, ...left];
    },
  };
}
