// A node VM's guest stage, through its OS's provider: the same for every guest OS. A change
// the provider could only write to files (Talos without talosctl) ends the stage waiting
// for a manual step: the journal keeps its commands and files, the node (not disturbed:
// nothing rebooted) is uncordoned, the rest of the lab goes on, and apply ends with exit 3.
// A later plan finds the change made once the Kubernetes node shows it.

import { guestLayer } from '../../guest/providers.ts';
import { guestEnvironment } from '../connections.ts';
import type { GuestPart, HostPart } from '../plan.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, type StageContext } from './context.ts';

export function guestStage(context: StageContext, part: HostPart, guest: GuestPart): Stage {
  const { connections, options, journal } = context;
  const { vm } = guest;
  const stage = {
    id: `${part.node}/guest/${vm.vmid}`,
    group: `host:${part.node}`,
    fingerprint: fingerprintOf((guest.plan?.steps ?? []).map((s) => s.id)),
    title: `guest of VM ${vm.vmid} (${vm.os})`,
  };
  return {
    ...stage,
    run: async (say) => {
      const layer = guestLayer(
        vm,
        guestEnvironment(connections, { rebootTimeoutMs: options.rebootTimeoutMs, pollMs: options.pollMs }),
      );
      if (!layer || !guest.plan) return;
      try {
        const result = await layer.apply(guest.plan, { say });
        if (result.applied) return;
        const target = result.manual?.target ?? layer.name;
        const reason = result.manual?.reason ?? 'not applied here';
        await journal.markPending({
          stage: `${stage.id}@${stage.fingerprint}`,
          target,
          reason,
          commands: result.commands,
          files: result.files,
        });
        say(`${target}: waiting for a manual step (${reason}): wrote ${result.files.join(', ')}`);
      } finally {
        await layer.close();
      }
    },
  };
}
