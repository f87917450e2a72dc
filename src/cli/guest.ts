// igpu-split guest …: the node VMs' OS — Ubuntu over SSH (kernel with i915, reboot),
// Talos through the Image Factory and talosctl — and the GitOps files for both.

import type { Command } from 'commander';
import { registerGuestApply } from './guest-apply.ts';
import { registerGuestPlan } from './guest-plan.ts';
import { registerGuestRender } from './guest-render.ts';
import { registerGuestVerify } from './guest-verify.ts';

export function registerGuest(program: Command): void {
  const guest = program
    .command('guest')
    .description("the node VMs' OS: i915 and /dev/dri on Ubuntu (SSH) and Talos (Image Factory, talosctl)");
  registerGuestPlan(guest);
  registerGuestApply(guest);
  registerGuestVerify(guest);
  registerGuestRender(guest);
}
