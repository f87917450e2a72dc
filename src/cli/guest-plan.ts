// igpu-split guest plan: per node VM, what stands between the vGPU and a render node,
// and the steps that close it; changes nothing (Talos: asks the Image Factory for the
// schematic id, which is content-addressed and creates nothing new for a known schematic).

import type { Command } from 'commander';
import {
  addGuestOptions,
  closeWork,
  type GuestOptions,
  type GuestWork,
  loadGuests,
  planGuest,
  workRefused,
  workTitle,
} from './guest-options.ts';
import { renderLayerPlan } from './render-plan.ts';

export function registerGuestPlan(guest: Command): void {
  addGuestOptions(
    guest.command('plan').description('show what guest apply would do for each node VM; changes nothing'),
  ).action(async (options: GuestOptions) => {
    const { lab, vms, talosctl } = await loadGuests(options);
    const works: GuestWork[] = [];
    try {
      for (const vm of vms) works.push(await planGuest(vm, lab, options, talosctl));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(works.map(jsonOf), null, 2)}\n`);
      } else {
        for (const work of works)
          process.stdout.write(renderLayerPlan(workTitle(work), work.plan.checks, work.plan.steps));
        if (!talosctl && works.some((w) => w.kind === 'talos'))
          process.stdout.write(
            'talosctl is not installed: apply will write the files and print the commands\n',
          );
      }
      process.exitCode = works.some((w) => workRefused(w) !== undefined) ? 1 : 0;
    } finally {
      for (const work of works) await closeWork(work);
    }
  });
}

export function jsonOf(work: GuestWork) {
  return work.kind === 'ubuntu'
    ? { vmid: work.vm.vmid, os: 'ubuntu', plan: work.plan }
    : { vmid: work.vm.vmid, os: 'talos', plan: work.plan, facts: work.facts };
}
