// igpu-split host apply: shows the plan, asks (unless --yes), applies it, and with
// --reboot reboots, waits for the host and verifies.

import type { Command } from 'commander';
import { ManualStepError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addHostOptions, type HostOptions, onEachHost } from './host-options.ts';
import { ACS_HELP, renderPlan } from './host-plan.ts';
import { addJsonOption, addRebootTimeout, addYesOption, FORCE_HELP, jsonNeedsYes } from './option-checks.ts';
import { renderChecks } from './render-doctor.ts';

interface ApplyFlags extends HostOptions {
  json?: boolean;
  yes?: boolean;
  force?: boolean;
  acsOverride?: boolean;
  reboot?: boolean;
  rebootTimeout: number;
}

export function registerHostApply(host: Command): void {
  // --json: {plan, applied, checks} at the end.
  const command = addJsonOption(
    addYesOption(
      host
        .command('apply')
        .description(
          'apply the host plan: back up, write atomically, check, refresh the boot loader (reboot only with --reboot; asks unless --yes)',
        ),
    ),
  )
    .option('--force', FORCE_HELP)
    .option('--acs-override', ACS_HELP)
    .option('--reboot', 'reboot when the plan needs it, wait for the host, then verify');
  addRebootTimeout(command);
  addHostOptions(command, false).action(async (options: ApplyFlags, self: Command) => {
    const timeout = options.rebootTimeout;
    jsonNeedsYes(options);
    const say = (text: string) => {
      if (!options.json) process.stdout.write(text);
    };
    const [
      { gatherHostFacts },
      { planHost },
      { applyHostPlan, hostPlanRefusal, readState },
      { rebootAndWait },
      { verifyHost },
    ] = await Promise.all([
      import('../host/gather.ts'),
      import('../host/plan.ts'),
      import('../host/apply.ts'),
      import('../linux/reboot.ts'),
      import('../host/verify.ts'),
    ]);
    await onEachHost(options, self, true, async (host, run) => {
      const report: Record<string, unknown> = {};
      run.json = report;
      let target = await host.open();
      try {
        const plan = planHost(await gatherHostFacts(target), { acsOverride: options.acsOverride === true });
        report.plan = plan;
        say(renderPlan(plan));
        const refused = hostPlanRefusal(plan, { force: options.force === true });
        if (refused) throw refused;
        if (plan.steps.length === 0) return;
        if (!options.yes) await confirm(`apply this plan to ${target.target}?`, 'igpu-split host plan');
        const result = await applyHostPlan(target, plan, { force: options.force === true });
        report.applied = result;
        say(
          `applied ${counted(result.done.length, 'step')}${result.backupDir ? `; backups in ${result.backupDir}` : ''}\n`,
        );
        if (!result.rebootNeeded) return;
        if (!options.reboot)
          throw new ManualStepError('applied; a reboot is needed to make it live', {
            target: target.target,
            fix: 'reboot the host (or rerun with --reboot), then run igpu-split host verify',
          });
        say(`rebooting ${target.target} …\n`);
        target = await rebootAndWait(target, { reconnect: () => host.open(), timeoutMs: timeout * 1000 });
        const checks = verifyHost(await gatherHostFacts(target), await readState(target));
        report.checks = checks;
        say(renderChecks(checks));
        run.code = checks.some((c) => c.status === 'fail') ? 1 : 0;
      } finally {
        await target.close();
      }
    });
  });
}
