// A node VM's guest stage, through its OS's provider: the same for every guest OS. A change
// the provider could only write to files (Talos without talosctl) stops the run with the
// commands to carry out, then `apply --resume`.

import { ManualStepError } from '../../core/errors.ts';
import { guestLayer } from '../../guest/providers.ts';
import { guestEnvironment } from '../connections.ts';
import type { GuestPart, HostPart } from '../plan.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, type StageContext } from './context.ts';

export function guestStage(context: StageContext, part: HostPart, guest: GuestPart): Stage {
  const { connections, options } = context;
  const { vm } = guest;
  return {
    id: `${part.node}/guest/${vm.vmid}`,
    group: `host:${part.node}`,
    fingerprint: fingerprintOf((guest.plan?.steps ?? []).map((s) => s.id)),
    title: `guest of VM ${vm.vmid} (${vm.os})`,
    run: async (say) => {
      const layer = guestLayer(
        vm,
        guestEnvironment(connections, { rebootTimeoutMs: options.rebootTimeoutMs, pollMs: options.pollMs }),
      );
      if (!layer || !guest.plan) return;
      try {
        const result = await layer.apply(guest.plan, { say });
        if (!result.applied)
          throw new ManualStepError(
            `${result.manual?.reason ?? 'not applied'}: wrote ${result.files.join(', ')}`,
            {
              target: result.manual?.target ?? layer.name,
              fix: `run: ${result.commands.join(' && ')}; then igpu-split apply --resume`,
            },
          );
      } finally {
        await layer.close();
      }
    },
  };
}
