// igpu-split vm …: the node VMs' vGPU (hostpci with an mdev type), machine type and
// Secure Boot keys, changed through the Proxmox API.

import type { Command } from 'commander';
import { registerVmApply } from './vm-apply.ts';
import { registerVmPlan } from './vm-plan.ts';
import { registerVmRollback } from './vm-rollback.ts';
import { registerVmVerify } from './vm-verify.ts';

export function registerVm(program: Command): void {
  const vm = program
    .command('vm')
    .description("the node VMs' vGPU through the Proxmox API: plan, apply, verify, rollback");
  registerVmPlan(vm);
  registerVmApply(vm);
  registerVmVerify(vm);
  registerVmRollback(vm);
}
