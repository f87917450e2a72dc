// igpu-split rollback: every layer's rollback in reverse order (asks unless --yes).

import type { Command } from 'commander';
import { confirm } from './confirm.ts';
import { addLabRunOptions, type LabRunOptions, openLabRun } from './lab-run.ts';
import { jsonNeedsYes, YES_HELP } from './option-checks.ts';
import { jsonText } from './output.ts';

export function registerRollback(program: Command): void {
  addLabRunOptions(
    program
      .command('rollback')
      .description('undo everything igpu-split did in the lab, last layer first (asks unless --yes)'),
  )
    .option('--yes', YES_HELP)
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .option(
      '--discard-journal',
      'roll back although an interrupted apply left its journal, then remove that journal (for when apply --resume cannot go on)',
    )
    .action(
      async (options: LabRunOptions & { yes?: boolean; forceStop?: boolean; discardJournal?: boolean }) => {
        jsonNeedsYes(options);
        const { rollbackWholeLab } = await import('../engine/lab-run.ts');
        const { lab, connections } = await openLabRun(options);
        try {
          const report = await rollbackWholeLab(lab, connections, {
            labFile: options.lab,
            discardJournal: options.discardJournal,
            forceStop: options.forceStop,
            confirm: options.yes
              ? undefined
              : async () => {
                  const [{ rollbackDisturbances }, { disturbanceSummary }] = await Promise.all([
                    import('../engine/rollback.ts'),
                    import('../engine/disturbances.ts'),
                  ]);
                  const vms = lab.vms.map((vm) => ({ ...vm, node: vm.host }));
                  const disturbed = disturbanceSummary(
                    await rollbackDisturbances(connections.proxmox, vms),
                    'no VM restart or drain',
                  );
                  await confirm(
                    'roll back the whole lab?',
                    'igpu-split status',
                    `${disturbed}; no host reboot (a host whose boot files are put back is named after: reboot it yourself)`,
                  );
                },
            say: options.json ? undefined : (line) => process.stdout.write(`${line}\n`),
            warn: (line) => process.stderr.write(`igpu-split: ${line}\n`),
          });
          // An object per layer, not the sentences said: docs/json.md.
          if (options.json)
            process.stdout.write(jsonText('rollback', { undone: report.undone, notes: report.notes }));
        } finally {
          await connections.close();
        }
      },
    );
}
