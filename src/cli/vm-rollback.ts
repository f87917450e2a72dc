// igpu-split vm rollback: undo what vm apply recorded in each VM's description.

import type { Command } from 'commander';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addLabOptions, addVmFilter, desiredVms, type LabOptions, openLab } from './lab-options.ts';
import { jsonNeedsYes, YES_HELP } from './option-checks.ts';
import { jsonText, warn } from './output.ts';

export function registerVmRollback(vm: Command): void {
  addVmFilter(
    addLabOptions(
      vm
        .command('rollback')
        .description('remove the vGPUs igpu-split added and put back what it changed (asks unless --yes)'),
    ),
  )
    .option('--yes', YES_HELP)
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .action(async (options: LabOptions & { yes?: boolean; forceStop?: boolean }) => {
      jsonNeedsYes(options);
      const opened = await openLab(options);
      try {
        const vms = desiredVms(opened.lab, options.vm);
        if (!options.yes)
          await confirm(
            `roll back ${counted(vms.length, 'VM')}? running ones are restarted`,
            'igpu-split vm verify',
          );
        const { rollbackVms } = await import('../vm/apply.ts');
        const result = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
          rollbackVms(opened.api, vms, {
            forceStop: options.forceStop === true,
            progress: options.json ? undefined : (line) => process.stdout.write(`  ${line}\n`),
          }),
        );
        if (options.json) process.stdout.write(jsonText('vm rollback', result));
        else if (result.changed.length === 0) process.stdout.write('nothing of ours on these VMs\n');
      } finally {
        await opened.close();
      }
    });
}
