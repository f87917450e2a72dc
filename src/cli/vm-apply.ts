// igpu-split vm apply: shows the plan, asks (unless --yes), then per VM: shut down,
// change the config, start, wait — one VM at a time.

import type { Command } from 'commander';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addLabOptions, addVmFilter, type LabOptions } from './lab-options.ts';
import { jsonNeedsYes, numberOption, YES_HELP } from './option-checks.ts';
import { jsonText, warn } from './output.ts';
import { addConsentFlags, type ConsentFlags, planFromLab, renderVmPlan } from './vm-plan.ts';

interface ApplyFlags extends LabOptions, ConsentFlags {
  yes?: boolean;
  forceStop?: boolean;
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
    .action(async (options: ApplyFlags) => {
      jsonNeedsYes(options);
      const { plan, opened } = await planFromLab(options);
      try {
        if (!options.json) process.stdout.write(renderVmPlan(plan));
        if (plan.refused) {
          process.exitCode = 1;
          return;
        }
        if (plan.changes.length === 0) {
          if (options.json) process.stdout.write(jsonText('vm apply', { plan, changed: [], log: [] }));
          return;
        }
        if (!options.yes)
          await confirm(`change ${counted(plan.changes.length, 'VM')}?`, 'igpu-split vm plan');
        const { applyVmPlan } = await import('../vm/apply.ts');
        const consents = [
          options.changeMachine ? '--change-machine' : '',
          options.resetEfiKeys ? '--reset-efi-keys' : '',
        ].filter(Boolean);
        const result = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
          applyVmPlan(opened.api, plan, {
            consents,
            shutdownTimeoutSeconds: options.shutdownTimeout,
            forceStop: options.forceStop === true,
            progress: options.json ? undefined : (line) => process.stdout.write(`  ${line}\n`),
          }),
        );
        if (options.json) process.stdout.write(jsonText('vm apply', { plan, ...result }));
      } finally {
        await opened.close();
      }
    });
}
