// igpu-split rollback: every layer's rollback in reverse order (asks unless --yes).

import type { Command } from 'commander';
import { IgpuSplitError } from '../core/errors.ts';
import { confirm } from './confirm.ts';
import { jsonText } from './json.ts';
import { addLabRunOptions, type LabRunOptions, openLabRun } from './lab-run.ts';
import { jsonNeedsYes } from './option-checks.ts';

export function registerRollback(program: Command): void {
  addLabRunOptions(
    program.command('rollback').description('undo everything igpu-split did in the lab, last layer first'),
  )
    .option('--yes', 'do not ask')
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .option(
      '--discard-journal',
      'roll back although an interrupted apply left its journal, then remove that journal (for when apply --resume cannot go on)',
    )
    .action(
      async (options: LabRunOptions & { yes?: boolean; forceStop?: boolean; discardJournal?: boolean }) => {
        jsonNeedsYes(options);
        const [{ rollbackLab }, { Journal }] = await Promise.all([
          import('../engine/rollback.ts'),
          import('../engine/journal.ts'),
        ]);
        const { lab, connections } = await openLabRun(options);
        const journal = new Journal(options.lab);
        let locked = false;
        try {
          // Never beside an apply: the same lab-wide lock, taken once the user agreed.
          // With --discard-journal an interrupted apply's journal is no obstacle; a live apply still is.
          const discard = options.discardJournal === true;
          const blocked = await journal.refusal(discard);
          if (blocked) throw blocked;
          // A journal too damaged to read is what --discard-journal is for: it is said, then removed.
          const earlier = discard
            ? await journal
                .earlierRun()
                // expected: IgpuSplitError (a damaged journal) — said; the rest is thrown.
                .catch((error: unknown) =>
                  error instanceof IgpuSplitError ? error.message : Promise.reject(error),
                )
            : undefined;
          if (earlier)
            process.stderr.write(`igpu-split: ${earlier}; rollback undoes it and then removes its journal\n`);
          if (!options.yes) await confirm('roll back the whole lab? VMs are restarted', 'igpu-split status');
          await journal.lock(discard);
          locked = true;
          const say = options.json ? undefined : (line: string) => process.stdout.write(`${line}\n`);
          const log = await rollbackLab(lab, connections, { forceStop: options.forceStop, say });
          if (earlier) {
            await journal.finish();
            // Rollback restarts only the VMs it stops itself, and leaves cordons to their owner.
            const line = `removed the interrupted apply’s journal (${earlier}): start by hand any VM it left stopped, and uncordon any node it left drained (igpu-split cluster uncordon --node …)`;
            log.push(line);
            say?.(line);
          }
          if (options.json) process.stdout.write(jsonText('rollback', log));
        } finally {
          if (locked) await journal.unlock();
          await connections.close();
        }
      },
    );
}
