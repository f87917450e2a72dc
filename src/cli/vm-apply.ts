// igpu-split vm apply: shows the plan, asks (unless --yes), then per VM: drain its
// Kubernetes node, shut down, change the config, start, wait, uncordon — one VM at a time.

import type { Command } from 'commander';
import { kubernetesNodeOf } from '../config/derived.ts';
import { RefusedError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addLabOptions, addVmFilter, type LabOptions } from './lab-options.ts';
import { jsonNeedsYes, NO_DRAIN_HELP, numberOption, timeoutsOf, YES_HELP } from './option-checks.ts';
import { jsonText, warn } from './output.ts';
import { addConsentFlags, type ConsentFlags, planFromLab, renderVmPlan } from './vm-plan.ts';

interface ApplyFlags extends LabOptions, ConsentFlags {
  yes?: boolean;
  forceStop?: boolean;
  drain?: boolean;
  shutdownTimeout: number;
}

export function registerVmApply(vm: Command): void {
  const command = addConsentFlags(
    addVmFilter(
      addLabOptions(
        vm
          .command('apply')
          .description('attach the vGPUs: shut down, change, start each VM in turn (asks unless --yes)'),
      ),
    ),
  ).option('--yes', YES_HELP);
  // Proxmox takes whole seconds.
  numberOption(
    command,
    '--shutdown-timeout <seconds>',
    'how long a guest gets to shut down',
    { min: 1, max: 3600, integer: true, seconds: true },
    180,
  )
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .option('--no-drain', NO_DRAIN_HELP)
    .action(async (options: ApplyFlags) => {
      jsonNeedsYes(options);
      const { plan, opened } = await planFromLab(options);
      try {
        if (!options.json) process.stdout.write(renderVmPlan(plan));
        // Said in one line on stderr as well, so a --json run says why it changed nothing.
        if (plan.refused)
          throw new RefusedError(`the VM plan cannot be applied: ${plan.refused}`, {
            fix: 'see igpu-split vm plan',
          });
        if (plan.changes.length === 0) {
          if (options.json) process.stdout.write(jsonText('vm apply', { plan, changed: [], log: [] }));
          return;
        }
        const [{ disturbanceSummary, vmDisturbances }, { drainAroundRestart }, { openLabKube }] =
          await Promise.all([
            import('../engine/disturbances.ts'),
            import('../engine/stages/nodes.ts'),
            import('../engine/connections.ts'),
          ]);
        // A VM that maps to no Kubernetes node needs no drain.
        const nodeOf = kubernetesNodeOf(opened.lab, options.drain !== false);
        const disturbed = vmDisturbances(
          plan.changes.map((c) => ({ vmid: c.vmid, steps: c.steps, kubernetesNode: nodeOf(c.vmid) })),
        );
        if (!options.yes)
          await confirm(
            `change ${counted(plan.changes.length, 'VM')}?`,
            'igpu-split vm plan',
            disturbanceSummary(disturbed),
          );
        const { applyVmPlan } = await import('../vm/apply.ts');
        const consents = [
          options.changeMachine ? '--change-machine' : '',
          options.resetEfiKeys ? '--reset-efi-keys' : '',
        ].filter(Boolean);
        const progress = options.json ? undefined : (line: string) => process.stdout.write(`  ${line}\n`);
        const drains = (disturbed['node-drain'] ?? []).length > 0;
        const hooks = drains
          ? drainAroundRestart(openLabKube(opened.lab, timeoutsOf(options)), nodeOf, { say: progress })
          : {};
        const result = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
          applyVmPlan(opened.api, plan, {
            consents,
            shutdownTimeoutSeconds: options.shutdownTimeout,
            forceStop: options.forceStop === true,
            progress,
            ...hooks,
          }),
        );
        if (options.json) process.stdout.write(jsonText('vm apply', { plan, ...result }));
      } finally {
        await opened.close();
      }
    });
}
