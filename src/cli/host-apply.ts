// igpu-split host apply: shows the plan, asks (unless --yes), applies it, and with
// --reboot reboots, waits for the host and verifies. With a lab file that names the
// host, the Kubernetes nodes of its VMs are drained before the reboot and uncordoned once
// Ready after it.

import type { Command } from 'commander';
import { ManualStepError, UsageError } from '../core/errors.ts';
import type { Step } from '../core/model.ts';
import { confirm } from './confirm.ts';
import { addHostOptions, type HostOptions, openHost } from './host-options.ts';
import { ACS_HELP, renderPlan } from './host-plan.ts';
import { jsonNeedsYes, numberOption, timeoutsOf } from './option-checks.ts';
import { jsonText } from './output.ts';
import { renderChecks } from './render-doctor.ts';

interface ApplyFlags extends HostOptions {
  json?: boolean;
  yes?: boolean;
  force?: boolean;
  acsOverride?: boolean;
  reboot?: boolean;
  rebootTimeout: number;
  lab?: string;
  drain?: boolean;
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
  addHostOptions(command, false);
  // The lab file tells which node VMs run on the host (another change may give every host command --lab).
  if (!command.options.some((option) => option.long === '--lab'))
    command.option(
      '--lab <file>',
      'the lab file: its VMs on this host have their Kubernetes nodes drained for --reboot',
    );
  command
    .option(
      '--no-drain',
      "reboot without draining the Kubernetes nodes of the host's VMs (a cluster you drain yourself, or one this machine cannot reach)",
    )
    .action(async (options: ApplyFlags) => {
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
        const reboots = plan.steps.some((step) => step.disturbs.includes('host-reboot'));
        const drain =
          options.reboot && reboots && options.drain !== false ? await hostNodes(options) : undefined;
        if (!options.yes)
          await confirm(
            `apply this plan to ${target.target}?`,
            'igpu-split host plan',
            await rebootSummary(plan.steps, options.reboot === true, drain?.nodes ?? []),
          );
        const result = await applyHostPlan(target, plan, { force: options.force === true });
        report.applied = result;
        say(
          `applied ${result.done.length} step(s)${result.backupDir ? `; backups in ${result.backupDir}` : ''}\n`,
        );
        if (!result.rebootNeeded) return;
        if (!options.reboot)
          throw new ManualStepError('applied; a reboot is needed to make it live', {
            target: target.target,
            fix: 'reboot the host (or rerun with --reboot), then run igpu-split host verify',
          });
        say(`rebooting ${target.target} …\n`);
        target = await rebootAndWait(target, {
          reconnect: () => openHost(options),
          timeoutMs: timeout * 1000,
          beforeReboot: drain?.before,
        });
        const checks = verifyHost(await gatherHostFacts(target), await readState(target));
        report.checks = checks;
        say(renderChecks(checks));
        process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
        await drain?.after();
      } finally {
        await target.close();
        if (options.json) process.stdout.write(jsonText('host apply', report));
      }
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
 * The Kubernetes nodes of the VMs the lab file puts on this host (matched by its ssh:
 * address), and how to drain them before the reboot and uncordon them once Ready after.
 * No lab file, or a host it does not name: nothing to drain is known.
 */
async function hostNodes(options: ApplyFlags) {
  if (!options.lab) return undefined;
  const [{ loadLab }, { openLabKube }, { drainAroundRestart }] = await Promise.all([
    import('../config/load.ts'),
    import('../engine/connections.ts'),
    import('../engine/stages/nodes.ts'),
  ]);
  const lab = await loadLab(options.lab);
  const host = lab.hosts.find((h) => h.ssh === options.host);
  if (!host)
    throw new UsageError(`--host ${options.host}: no host of ${options.lab} has this ssh: address`, {
      fix: `use the address the lab file gives the host, or leave out --lab`,
    });
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
