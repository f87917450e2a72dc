// igpu-split rollback: every layer's rollback in reverse order (asks unless --yes).

import type { Command } from 'commander';
import { confirm } from './confirm.ts';
import { addLabRunOptions, type LabRunOptions, openLabRun } from './lab-run.ts';
import { jsonNeedsYes } from './option-checks.ts';

export function registerRollback(program: Command): void {
  addLabRunOptions(
    program.command('rollback').description('undo everything igpu-split did in the lab, last layer first'),
  )
    .option('--yes', 'do not ask')
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .action(async (options: LabRunOptions & { yes?: boolean; forceStop?: boolean }) => {
      jsonNeedsYes(options);
      const [{ rollbackLab }, { Journal }] = await Promise.all([
        import('../engine/rollback.ts'),
        import('../engine/apply.ts'),
      ]);
      const { lab, connections } = await openLabRun(options);
      const journal = new Journal(options.lab);
      let locked = false;
      try {
        // Never beside an apply: the same lab-wide lock, taken once the user agreed.
        const blocked = await journal.refusal(false);
        if (blocked) throw blocked;
        if (!options.yes) await confirm('roll back the whole lab? VMs are restarted', 'igpu-split status');
        await journal.lock(false);
        locked = true;
        const log = await rollbackLab(lab, connections, { forceStop: options.forceStop });
        process.stdout.write(options.json ? `${JSON.stringify(log, null, 2)}\n` : `${log.join('\n')}\n`);
      } finally {
        if (locked) await journal.unlock();
        await connections.close();
      }
    });
}
