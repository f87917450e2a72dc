// igpu-split vm rollback: undo what vm apply recorded in each VM's description.

import type { Command } from 'commander';
import { kubernetesNodeOf } from '../config/derived.ts';
import { counted } from '../core/text.ts';
import { confirm } from './confirm.ts';
import { addLabOptions, addVmFilter, desiredVms, type LabOptions, openLab } from './lab-options.ts';
import { jsonNeedsYes, NO_DRAIN_HELP, timeoutsOf, YES_HELP } from './option-checks.ts';
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
    .option('--no-drain', NO_DRAIN_HELP)
    .action(async (options: LabOptions & { yes?: boolean; forceStop?: boolean; drain?: boolean }) => {
      jsonNeedsYes(options);
      const opened = await openLab(options);
      try {
        const { desired: vms } = await desiredVms(opened, options.vm);
        const [{ rollbackDisturbances }, { disturbanceSummary }, { drainAroundRestart }, { openLabKube }] =
          await Promise.all([
            import('../engine/rollback.ts'),
            import('../engine/disturbances.ts'),
            import('../engine/stages/nodes.ts'),
            import('../engine/connections.ts'),
          ]);
        // A VM that maps to no Kubernetes node needs no drain.
        const nodeOf = kubernetesNodeOf(opened.lab, options.drain !== false);
        const disturbed = await rollbackDisturbances(
          opened.api,
          vms.map((vm) => ({ ...vm, kubernetesNode: nodeOf(vm.vmid) })),
        );
        if (!options.yes)
          await confirm(
            `roll back ${counted(vms.length, 'VM')}?`,
            'igpu-split vm verify',
            disturbanceSummary(disturbed),
          );
        const { rollbackVms } = await import('../vm/apply.ts');
        const progress = options.json ? undefined : (line: string) => process.stdout.write(`  ${line}\n`);
        // Which VMs carry our line and run is read again as each is rolled back: the hooks drain any node that needs it.
        const hooks = vms.some((vm) => nodeOf(vm.vmid))
          ? drainAroundRestart(openLabKube(opened.lab, timeoutsOf(options)), nodeOf, { say: progress })
          : {};
        const result = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
          rollbackVms(opened.api, vms, {
            forceStop: options.forceStop === true,
            vfPool: opened.lab.sriov.mapping,
            progress,
            ...hooks,
          }),
        );
        if (options.json) process.stdout.write(jsonText('vm rollback', result));
        else if (result.changed.length === 0) process.stdout.write('nothing of ours on these VMs\n');
      } finally {
        await opened.close();
      }
    });
}
