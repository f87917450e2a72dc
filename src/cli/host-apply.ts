// igpu-split host apply: shows the plan, asks (unless --yes), applies it, and with
// --reboot reboots, waits for the host and verifies.

import type { Command } from 'commander';
import { ManualStepError, UsageError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addHostOptions, type HostOptions, openHost } from './host-options.ts';
import { ACS_HELP, renderPlan } from './host-plan.ts';
import { jsonNeedsYes, numberOption } from './option-checks.ts';
import { jsonText } from './output.ts';
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
  const command = host
    .command('apply')
    .description(
      'apply the host plan: back up, write atomically, check, refresh the boot loader (reboot only with --reboot)',
    )
    .option('--yes', 'do not ask before changing the host')
    .option('--json', 'print {plan, applied, checks} as JSON at the end (needs --yes)')
    .option('--force', 'override kernel parameters you set to other values (e.g. intel_iommu=off)')
    .option('--acs-override', ACS_HELP)
    .option('--reboot', 'reboot when the plan needs it, wait for the host, then verify');
  numberOption(
    command,
    '--reboot-timeout <seconds>',
    'how long to wait for the host to come back',
    { min: 1, max: 7200, seconds: true },
    600,
  );
  addHostOptions(command, false).action(async (options: ApplyFlags) => {
    const timeout = options.rebootTimeout;
    if (!options.host) {
      throw new UsageError('host apply needs --host ssh://user@host', { fix: 'name the host to change' });
    }
    jsonNeedsYes(options);
    const report: Record<string, unknown> = {};
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
    let target = await openHost(options);
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
      target = await rebootAndWait(target, { reconnect: () => openHost(options), timeoutMs: timeout * 1000 });
      const checks = verifyHost(await gatherHostFacts(target), await readState(target));
      report.checks = checks;
      say(renderChecks(checks));
      process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
    } finally {
      await target.close();
      if (options.json) process.stdout.write(jsonText('host apply', report));
    }
  });
}
