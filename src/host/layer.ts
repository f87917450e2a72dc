// The host layer as one object the engine drives: a Proxmox node's boot configuration,
// modules and (after a reboot) the iGPU's mediated devices.

import type { HostAccess } from '../access/host.ts';
import type { Layer } from '../core/model.ts';
import { type ApplyOptions, type ApplyResult, applyHostPlan, readState } from './apply.ts';
import type { HostFacts } from './facts.ts';
import { gatherHostFacts } from './gather.ts';
import { type HostPlan, type HostPlanOptions, planHost } from './plan.ts';
import { verifyHost } from './verify.ts';

export function hostLayer(
  host: HostAccess,
  options: { plan?: HostPlanOptions; apply?: ApplyOptions } = {},
): Layer<HostFacts, HostPlan, ApplyResult> {
  return {
    name: `host ${host.target}`,
    gather: () => gatherHostFacts(host),
    plan: (facts) => planHost(facts, options.plan),
    // The reboot a `host-reboot` step asks for is the engine's (it drains first): apply leaves it.
    apply: (plan) => applyHostPlan(host, plan, options.apply),
    verify: async () => verifyHost(await gatherHostFacts(host), await readState(host)),
  };
}
