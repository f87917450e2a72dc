// igpu-split guest verify: i915 bound, the Intel render node present (Ubuntu), the
// extensions running and /dev/dri populated (Talos, through talosctl).

import type { Command } from 'commander';
import type { Check } from '../core/model.ts';
import { addGuestOptions, type GuestOptions, loadGuests, openGuest } from './guest-options.ts';
import { renderChecks } from './render-doctor.ts';

export function registerGuestVerify(guest: Command): void {
  addGuestOptions(
    guest.command('verify').description('check i915 and the render node in each node VM'),
  ).action(async (options: GuestOptions) => {
    const { vms, talosctl } = await loadGuests(options);
    const checks: Check[] = [];
    for (const vm of vms) {
      if (vm.os === 'ubuntu') {
        const [{ gatherUbuntuFacts }, { ubuntuChecks }] = await Promise.all([
          import('../guest/ubuntu/gather.ts'),
          import('../guest/ubuntu/plan.ts'),
        ]);
        const guest = await openGuest(vm, options);
        try {
          checks.push(
            ...ubuntuChecks(await gatherUbuntuFacts(guest)).map((c) => ({
              ...c,
              id: `vm.${vm.vmid}.${c.id}`,
            })),
          );
        } finally {
          await guest.close();
        }
      } else if (vm.talos) {
        const { gatherTalosFacts, verifyTalos } = await import('../guest/talos/plan.ts');
        checks.push(...verifyTalos(await gatherTalosFacts(vm.talos.node, talosctl), vm.talos));
      }
    }
    process.stdout.write(options.json ? `${JSON.stringify(checks, null, 2)}\n` : renderChecks(checks));
    process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
  });
}
