// igpu-split guest plan: per node VM, what stands between the vGPU and a render node,
// and the steps that close it; changes nothing (Talos: asks the Image Factory for the
// schematic id, which is content-addressed and creates nothing new for a known schematic).

import type { Command } from 'commander';
import {
  addGuestOptions,
  type GuestOptions,
  type GuestWork,
  loadGuests,
  planGuest,
} from './guest-options.ts';
import { jsonText } from './output.ts';
import { renderLayerPlan } from './render-plan.ts';

export function registerGuestPlan(guest: Command): void {
  addGuestOptions(
    guest.command('plan').description('show what guest apply would do for each node VM; changes nothing'),
  ).action(async (options: GuestOptions) => {
    const guests = await loadGuests(options);
    try {
      const works: GuestWork[] = [];
      for (const entry of guests.layers) works.push(await planGuest(entry));
      if (options.json) {
        process.stdout.write(jsonText('guest plan', works.map(jsonOf)));
      } else {
        for (const work of works)
          process.stdout.write(renderLayerPlan(work.plan.title, work.plan.checks, work.plan.steps));
        for (const note of new Set(works.flatMap((w) => w.plan.notes ?? [])))
          process.stdout.write(`${note}\n`);
      }
      process.exitCode = works.some((w) => w.plan.refused !== undefined) ? 1 : 0;
    } finally {
      await guests.close();
    }
  });
}

function jsonOf(work: GuestWork) {
  return { vmid: work.vm.vmid, os: work.vm.os, plan: work.plan, facts: work.facts };
}
