// igpu-split host apply: shows the plan, asks (unless --yes), applies it, and with
// --reboot reboots, waits for the host and verifies. The Kubernetes nodes of the host's
// VMs (from the lab file) are drained before the reboot and uncordoned once Ready after it.

import type { Command } from 'commander';
import { ManualStepError, UsageError } from '../core/errors.ts';
import type { Step } from '../core/model.ts';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addHostOptions, type HostOptions, type HostTarget, labWishes, onEachHost } from './host-options.ts';
import { ACS_HELP, renderPlan } from './host-plan.ts';
import {
  addJsonOption,
  addRebootTimeout,
  addYesOption,
  FORCE_HELP,
  jsonNeedsYes,
  NO_DRAIN_HELP,
  timeoutsOf,
} from './option-checks.ts';
import { renderChecks } from './render-doctor.ts';

interface ApplyFlags extends HostOptions {
  json?: boolean;
  yes?: boolean;
  force?: boolean;
  acsOverride?: boolean;
  reboot?: boolean;
  rebootTimeout: number;
  drain?: boolean;
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
    .option('--reboot', 'reboot when the plan needs it, wait for the host, then verify')
    .option('--no-drain', NO_DRAIN_HELP);
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
        const plan = planHost(await gatherHostFacts(target), {
          acsOverride: options.acsOverride === true,
          ...labWishes(host),
        });
        report.plan = plan;
        say(renderPlan(plan));
        const refused = hostPlanRefusal(plan, { force: options.force === true });
        if (refused) throw refused;
        if (plan.steps.length === 0) return;
        const reboots = plan.steps.some((step) => step.disturbs.includes('host-reboot'));
        const drain =
          options.reboot && reboots && options.drain !== false ? await hostNodes(options, host) : undefined;
        if (!options.yes)
          await confirm(
            `apply this plan to ${target.target}?`,
            'igpu-split host plan',
            await rebootSummary(plan.steps, options.reboot === true, drain?.nodes ?? []),
          );
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
        target = await rebootAndWait(target, {
          reconnect: () => host.open(),
          timeoutMs: timeout * 1000,
          beforeReboot: drain?.before,
        });
        const checks = verifyHost(await gatherHostFacts(target), await readState(target));
        report.checks = checks;
        say(renderChecks(checks));
        run.code = checks.some((c) => c.status === 'fail') ? 1 : 0;
        await drain?.after();
      } finally {
        await target.close();
      }
    });
  });
}

/** The question's line: the reboot only with --reboot, and the drains that come with it. */
async function rebootSummary(
  steps: readonly Step[],
  reboot: boolean,
  nodes: readonly string[],
): Promise<string> {
  const { disturbanceSummary, stepDisturbances } = await import('../engine/disturbances.ts');
  const disturbed = stepDisturbances(reboot ? steps : steps.map((step) => ({ ...step, disturbs: [] })));
  const line = disturbanceSummary({ ...disturbed, 'node-drain': nodes });
  const later = !reboot && steps.some((step) => step.disturbs.includes('host-reboot'));
  return later ? `${line} now; the host needs a reboot after (--reboot, or by hand)` : line;
}

/**
 * The Kubernetes nodes of the VMs the lab file puts on this host, and how to drain them
 * before the reboot and uncordon them once Ready after. A host named by its address
 * alone (no lab file) may carry node VMs nobody told us about: refused without --no-drain.
 */
async function hostNodes(options: ApplyFlags, target: HostTarget) {
  const [{ existsSync }, { loadLab }, { openLabKube }, { drainAroundRestart }] = await Promise.all([
    import('node:fs'),
    import('../config/load.ts'),
    import('../engine/connections.ts'),
    import('../engine/stages/nodes.ts'),
  ]);
  const labFile = options.lab ?? 'igpu-split.yaml';
  // A host named by its node: came from the lab file; one named by its address may be in it (its ssh:).
  const lab = target.lab ?? (existsSync(labFile) ? await loadLab(labFile) : undefined);
  const host = lab?.hosts.find((h) => (target.node ? h.node === target.node : h.ssh === options.host));
  if (!lab || !host)
    throw new UsageError(
      `--reboot: ${lab ? `no host of ${labFile} has the ssh: address ${options.host}` : 'no lab file'}, so the Kubernetes nodes of this host’s VMs are not known`,
      {
        fix: 'name the host by its node: in the lab file (--host pve1, --lab FILE) so they are drained first, or pass --no-drain',
      },
    );
  const vms = lab.vms.filter((vm) => vm.host === host.node && vm.kubernetesNode);
  if (vms.length === 0) return undefined;
  const say = (line: string) => {
    if (!options.json) process.stdout.write(`${line}\n`);
  };
  const hooks = drainAroundRestart(
    openLabKube(lab, timeoutsOf(options)),
    (vmid) => vms.find((vm) => vm.vmid === vmid)?.kubernetesNode,
    { say, readyTimeoutMs: options.rebootTimeout * 1000 },
  );
  return {
    nodes: vms.map((vm) => vm.kubernetesNode as string),
    before: async () => {
      for (const vm of vms) await hooks.beforeStop(vm);
    },
    after: async () => {
      for (const vm of vms) await hooks.afterStart(vm);
    },
  };
}
