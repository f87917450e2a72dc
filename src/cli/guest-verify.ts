// igpu-split guest verify: each node VM's guest checks through its OS's provider (Ubuntu:
// i915 bound and the Intel render node present; Talos: the extensions running and
// /dev/dri populated, through talosctl).

import type { Command } from 'commander';
import type { Check } from '../core/model.ts';
import { addGuestOptions, type GuestOptions, loadGuests } from './guest-options.ts';
import { jsonText } from './output.ts';
import { renderChecks } from './render-doctor.ts';

export function registerGuestVerify(guest: Command): void {
  addGuestOptions(
    guest.command('verify').description('check i915 and the render node in each node VM'),
  ).action(async (options: GuestOptions) => {
    const guests = await loadGuests(options);
    const checks: Check[] = [];
    try {
      // Named by VM: two VMs' checks stay apart.
      for (const { vm, layer } of guests.layers)
        checks.push(...(await layer.verify()).map((c) => ({ ...c, id: `vm.${vm.vmid}.${c.id}` })));
    } finally {
      await guests.close();
    }
    process.stdout.write(options.json ? jsonText('guest verify', checks) : renderChecks(checks));
    process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
  });
}
