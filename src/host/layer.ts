// The host layer as one object the engine (and the fleet benchmark) drives.

import type { HostAccess } from '../access/host.ts';
import type { Layer } from '../core/model.ts';
import { type ApplyOptions, type ApplyResult, applyHostPlan, readState } from './apply.ts';
import type { HostFacts } from './facts.ts';
import { gatherHostFacts } from './gather.ts';
import { type HostPlan, type HostPlanOptions, planHost } from './plan.ts';
import { verifyHost } from './verify.ts';

export function hostLayer(
  host: HostAccess,
  options: HostPlanOptions = {},
): Layer<HostFacts, HostPlan, ApplyOptions, ApplyResult> {
  return {
    name: `host ${host.target}`,
    gather: () => gatherHostFacts(host),
    plan: (facts) => planHost(facts, options),
    apply: (plan, applyOptions) => applyHostPlan(host, plan, applyOptions),
    verify: async (facts) => verifyHost(facts, await readState(host)),
  };
}
