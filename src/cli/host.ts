// igpu-split host …: the Proxmox host layer (kernel command line, modules, reboot).

import type { Command } from 'commander';
import { registerHostApply } from './host-apply.ts';
import { registerHostPlan } from './host-plan.ts';
import { registerHostRollback } from './host-rollback.ts';
import { registerHostVerify } from './host-verify.ts';

export function registerHost(program: Command): void {
  const host = program
    .command('host')
    .description('the Proxmox host layer: kernel command line, modules, reboot');
  registerHostPlan(host);
  registerHostApply(host);
  registerHostVerify(host);
  registerHostRollback(host);
}
