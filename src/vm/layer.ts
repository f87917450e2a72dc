// The VM layer as one object the engine drives: each node VM's vGPU (hostpci), machine
// type and EFI disk, through the Proxmox API.

import type { DesiredVm } from '../config/derived.ts';
import type { Layer } from '../core/model.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { applyVmPlan, type VmApplyOptions, type VmApplyResult } from './apply.ts';
import { gatherVmFacts, type VmLayerFacts } from './gather.ts';
import { planVms, type VmPlan, type VmPlanOptions } from './plan.ts';
import { type MdevProbe, verifyVms } from './verify.ts';

/** What the VM plan reads: the VMs, plus what the mapping and host layers found. */
export interface VmPlanInputs {
  vms: VmLayerFacts;
  /** The mapping does not exist yet, but the mapping layer's plan creates it first. */
  mappingPlanned?: boolean;
  hostHints?: VmPlanOptions['hostHints'];
}

export function vmLayer(
  api: ProxmoxApi,
  desired: readonly DesiredVm[],
  options: Omit<VmPlanOptions, 'mappingPlanned' | 'hostHints'> & {
    apply?: Omit<VmApplyOptions, 'progress'>;
    probe?: MdevProbe;
  },
): Layer<VmPlanInputs, VmPlan, VmApplyResult> {
  return {
    name: 'VMs',
    gather: async () => ({ vms: await gatherVmFacts(api, desired, options.mapping) }),
    plan: (inputs) =>
      planVms(inputs.vms, desired, {
        ...options,
        mappingPlanned: inputs.mappingPlanned,
        hostHints: inputs.hostHints,
      }),
    apply: (plan, { say }) =>
      applyVmPlan(api, plan, { vfPool: options.vfPool, ...options.apply, progress: say }),
    verify: () =>
      verifyVms(api, desired, { mapping: options.mapping, probe: options.probe, vfPool: options.vfPool }),
  };
}
