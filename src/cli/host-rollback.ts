// igpu-split host rollback: remove exactly what apply added (asks unless --yes).

import type { Command } from 'commander';
import { confirm, NOTHING_DISTURBED } from './confirm.ts';
import { addHostOptions, type HostOptions, onEachHost } from './host-options.ts';
import { addJsonOption, addYesOption, jsonNeedsYes } from './option-checks.ts';

export function registerHostRollback(host: Command): void {
  const command = addJsonOption(
    addYesOption(
      host
        .command('rollback')
        .description(
          'remove what igpu-split added to the host (its state file says what), refresh the boot loader (asks unless --yes)',
        ),
    ),
  );
  addHostOptions(command, false).action(
    async (options: HostOptions & { json?: boolean; yes?: boolean }, self: Command) => {
      jsonNeedsYes(options);
      const [{ rollbackHost }, { readState }] = await Promise.all([
        import('../host/rollback.ts'),
        import('../host/apply.ts'),
      ]);
      await onEachHost(options, self, true, async (opened, run) => {
        const target = await opened.open();
        try {
          // Nothing of ours there: nothing to ask about.
          const ours = Object.keys((await readState(target)).files);
          if (!options.yes && ours.length > 0)
            await confirm(
              `roll back what igpu-split changed on ${target.target} (${ours.join(', ')})? its boot loader is refreshed; the old settings go at the next reboot`,
              'igpu-split host verify',
              `${NOTHING_DISTURBED} now; the host needs a reboot after (by hand) for the old settings`,
            );
          const result = await rollbackHost(target);
          run.json = result;
          if (options.json) return;
          if (result.changed.length === 0) {
            process.stdout.write(
              `nothing to roll back on ${target.target}: igpu-split has changed nothing there\n`,
            );
            return;
          }
          process.stdout.write(`restored: ${result.changed.join(', ')}\n`);
          for (const command of result.refreshed) process.stdout.write(`ran: ${command}\n`);
          process.stdout.write(
            result.rebootNeeded ? 'a reboot is needed to drop the old settings\n' : 'no reboot needed\n',
          );
        } finally {
          await target.close();
        }
      });
    },
  );
}
