// igpu-split guest apply: shows the plan, asks (unless --yes), then per node VM — Ubuntu:
// install the kernel package and reboot into it; Talos: patch and upgrade with talosctl,
// or write the files and print the commands when talosctl is absent — and verifies.

import type { Command } from 'commander';
import { ManualStepError } from '../core/errors.ts';
import { confirm } from './confirm.ts';
import {
  addGuestOptions,
  closeWork,
  type GuestOptions,
  type GuestWork,
  loadGuests,
  openGuest,
  planGuest,
  workTitle,
} from './guest-options.ts';
import { holdLabLock } from './lab-lock.ts';
import { jsonNeedsYes, numberOption } from './option-checks.ts';
import { renderChecks } from './render-doctor.ts';
import { renderLayerPlan } from './render-plan.ts';

interface ApplyFlags extends GuestOptions {
  yes?: boolean;
  out: string;
  rebootTimeout: number;
}

export function registerGuestApply(guest: Command): void {
  const command = addGuestOptions(
    guest.command('apply').description('make i915 and /dev/dri work in each node VM (asks unless --yes)'),
  )
    .option('--yes', 'do not ask')
    .option('--out <dir>', 'where Talos files are written', 'igpu-split-talos');
  numberOption(
    command,
    '--reboot-timeout <seconds>',
    'how long to wait for a guest to come back',
    { min: 1, max: 7200, seconds: true },
    600,
  ).action(async (options: ApplyFlags) => {
    const seconds = options.rebootTimeout;
    jsonNeedsYes(options);
    const { lab, vms, talosctl } = await loadGuests(options);
    const say = (text: string) => {
      if (!options.json) process.stdout.write(text);
    };
    const works: GuestWork[] = [];
    const report: unknown[] = [];
    let releaseLock: (() => Promise<void>) | undefined;
    try {
      for (const vm of vms) works.push(await planGuest(vm, lab, options, talosctl));
      for (const work of works) say(renderLayerPlan(workTitle(work), work.plan.checks, work.plan.steps));
      const todo = works.filter((w) => w.plan.steps.length > 0);
      if (todo.length === 0) return;
      if (!options.yes) await confirm(`change ${todo.length} guest(s)?`, 'igpu-split guest plan');
      releaseLock = await holdLabLock(options.lab);
      const progress = (line: string) => say(`  ${line}\n`);
      let failed = false;
      const manual: string[] = [];
      for (const work of todo) {
        if (work.kind === 'ubuntu') {
          const { applyUbuntuPlan } = await import('../guest/ubuntu/apply.ts');
          const { ubuntuChecks } = await import('../guest/ubuntu/plan.ts');
          const result = await applyUbuntuPlan(work.guest, work.plan, {
            reconnect: () => openGuest(work.vm, options),
            rebootTimeoutMs: seconds * 1000,
            progress,
          });
          work.guest = result.guest;
          const checks = ubuntuChecks(result.facts);
          failed ||= checks.some((c) => c.status === 'fail');
          say(renderChecks(checks));
          report.push({
            vmid: work.vm.vmid,
            installed: result.installed,
            rebooted: result.rebooted,
            checks,
          });
        } else {
          const { applyTalosPlan, gatherTalosFacts, verifyTalos } = await import('../guest/talos/plan.ts');
          const { join } = await import('node:path');
          const result = await applyTalosPlan(
            work.plan,
            talosctl,
            join(options.out, work.plan.node),
            progress,
          );
          if (!result.applied) {
            say(
              `  talosctl is not installed; wrote ${result.files.join(', ')}. Run:\n${result.commands.map((c) => `    ${c}\n`).join('')}`,
            );
            report.push({
              vmid: work.vm.vmid,
              applied: false,
              files: result.files,
              commands: result.commands,
            });
            manual.push(`VM ${work.vm.vmid}`);
            continue;
          }
          const spec = work.vm.talos as NonNullable<typeof work.vm.talos>;
          const checks = verifyTalos(await gatherTalosFacts(spec.node, talosctl), spec);
          failed ||= checks.some((c) => c.status === 'fail');
          say(renderChecks(checks));
          report.push({ vmid: work.vm.vmid, applied: true, files: result.files, checks });
        }
      }
      if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (manual.length > 0 && !failed)
        throw new ManualStepError(
          `talosctl is not installed: the Talos change for ${manual.join(', ')} is written, not applied`,
          {
            fix: 'run the printed commands, then igpu-split guest verify',
          },
        );
      process.exitCode = failed ? 1 : 0;
    } finally {
      await releaseLock?.();
      for (const work of works) await closeWork(work);
    }
  });
}
