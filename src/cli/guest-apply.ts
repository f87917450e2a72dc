// igpu-split guest apply: shows the plan, asks (unless --yes), then per node VM applies it
// through its OS's provider — Ubuntu: install the kernel package and reboot into it;
// Talos: patch and upgrade with talosctl, or write the files and print the commands when
// talosctl is absent — and verifies.

import type { Command } from 'commander';
import { kubernetesNodeOf } from '../config/derived.ts';
import { ManualStepError, RefusedError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import {
  addGuestOptions,
  type GuestOptions,
  type GuestWork,
  loadGuests,
  planGuest,
} from './guest-options.ts';
import { addRebootTimeout, addYesOption, jsonNeedsYes, NO_DRAIN_HELP, timeoutsOf } from './option-checks.ts';
import { jsonText, warn } from './output.ts';
import { renderChecks } from './render-doctor.ts';
import { renderLayerPlan } from './render-plan.ts';

interface ApplyFlags extends GuestOptions {
  yes?: boolean;
  drain?: boolean;
  out: string;
  rebootTimeout: number;
}

export function registerGuestApply(guest: Command): void {
  const command = addGuestOptions(
    guest.command('apply').description('make i915 and /dev/dri work in each node VM (asks unless --yes)'),
  )
    .option('--out <dir>', 'where Talos files are written', 'igpu-split-talos')
    .option('--no-drain', NO_DRAIN_HELP);
  addRebootTimeout(addYesOption(command)).action(async (options: ApplyFlags) => {
    jsonNeedsYes(options);
    const guests = await loadGuests(options, {
      rebootTimeoutMs: options.rebootTimeout * 1000,
      outRoot: options.out,
    });
    const say = (text: string) => {
      if (!options.json) process.stdout.write(text);
    };
    try {
      const works: GuestWork[] = [];
      for (const entry of guests.layers) works.push(await planGuest(entry));
      for (const work of works) say(renderLayerPlan(work.plan.title, work.plan.checks, work.plan.steps));
      // A refused plan is refused here as in guest plan (exit 1), before anything changes.
      const refused = works.find((w) => w.plan.refused !== undefined);
      if (refused)
        throw new RefusedError(`VM ${refused.vm.vmid}: ${refused.plan.refused}`, {
          fix: 'see igpu-split guest plan',
        });
      const todo = works.filter((w) => w.plan.steps.length > 0);
      if (todo.length === 0) {
        if (options.json) process.stdout.write(jsonText('guest apply', []));
        return;
      }
      const [{ disturbanceSummary, vmDisturbances }, { drainAroundRestart }, { openLabKube }] =
        await Promise.all([
          import('../engine/disturbances.ts'),
          import('../engine/stages/nodes.ts'),
          import('../engine/connections.ts'),
        ]);
      // A VM that maps to no Kubernetes node needs no drain; one whose steps disturb nothing neither.
      const nodeOf = kubernetesNodeOf(guests.lab, options.drain !== false);
      // A change written to files for the user (no talosctl) disturbs nothing now: no drain for it.
      const disturbed = vmDisturbances(
        todo
          .filter((w) => !w.plan.manual)
          .map((w) => ({ vmid: w.vm.vmid, steps: w.plan.steps, kubernetesNode: nodeOf(w.vm.vmid) })),
      );
      if (!options.yes)
        await confirm(
          `change ${counted(todo.length, 'guest')}?`,
          'igpu-split guest plan',
          disturbanceSummary(disturbed),
        );
      const drains = new Set((disturbed['node-drain'] ?? []).map(String));
      const hooks =
        drains.size > 0
          ? drainAroundRestart(
              openLabKube(guests.lab, timeoutsOf(options)),
              (vmid) => {
                const node = nodeOf(vmid);
                return node && drains.has(node) ? node : undefined;
              },
              { say: (line) => say(`  ${line}\n`), readyTimeoutMs: options.rebootTimeout * 1000 },
            )
          : undefined;
      const failed = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, async () => {
        const report: unknown[] = [];
        const manual: { vm: string; reason: string; change: string }[] = [];
        let failed = false;
        for (const work of todo) {
          await hooks?.beforeStop(work.vm);
          const result = await work.layer
            .apply(work.plan, { say: (line) => say(`  ${line}\n`) })
            .catch((error: unknown) => {
              // expected: anything the guest's apply throws — rethrown; a drained node is left cordoned, and said
              const node = hooks ? nodeOf(work.vm.vmid) : undefined;
              if (node) warn(`${node} stays cordoned: kubectl uncordon ${node} once the guest serves again`);
              throw error;
            });
          // Once the guest is back (or was not rebooted: a change written, not applied) its node serves again.
          await hooks?.afterStart(work.vm);
          if (!result.applied) {
            say(
              `  ${result.manual?.reason ?? 'not applied'}; wrote ${result.files.join(', ')}. Run:\n${result.commands.map((c) => `    ${c}\n`).join('')}`,
            );
            report.push({
              vmid: work.vm.vmid,
              applied: false,
              files: result.files,
              commands: result.commands,
            });
            manual.push({
              vm: `VM ${work.vm.vmid}`,
              reason: result.manual?.reason ?? 'not applied',
              change: result.manual?.change ?? 'the change',
            });
            continue;
          }
          const checks = await work.layer.verify();
          failed ||= checks.some((c) => c.status === 'fail');
          say(renderChecks(checks));
          report.push({ vmid: work.vm.vmid, applied: true, files: result.files, ...result.detail, checks });
        }
        if (options.json) process.stdout.write(jsonText('guest apply', report));
        if (manual.length > 0 && !failed)
          throw new ManualStepError(
            `${manual[0]?.reason}: ${manual[0]?.change} for ${manual.map((m) => m.vm).join(', ')} is written, not applied`,
            { fix: 'run the printed commands, then igpu-split guest verify' },
          );
        return failed;
      });
      process.exitCode = failed ? 1 : 0;
    } finally {
      await guests.close();
    }
  });
}
