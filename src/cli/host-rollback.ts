// igpu-split host rollback: remove exactly what apply added.

import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { addHostOptions, type HostOptions, openHost } from './host-options.ts';
import { jsonText } from './output.ts';

export function registerHostRollback(host: Command): void {
  const command = host
    .command('rollback')
    .description(
      'remove what igpu-split added to the host (its state file says what), refresh the boot loader',
    )
    .option('--json', 'print the result as JSON');
  addHostOptions(command, false).action(async (options: HostOptions & { json?: boolean }) => {
    if (!options.host) {
      throw new UsageError('host rollback needs --host ssh://user@host', { fix: 'name the host' });
    }
    const { rollbackHost } = await import('../host/rollback.ts');
    const target = await openHost(options);
    try {
      const result = await rollbackHost(target);
      if (options.json) {
        process.stdout.write(jsonText('host rollback', result));
      } else if (result.changed.length === 0) {
        process.stdout.write(
          `nothing to roll back on ${target.target}: igpu-split has changed nothing there\n`,
        );
      } else {
        process.stdout.write(`restored: ${result.changed.join(', ')}\n`);
        for (const command of result.refreshed) process.stdout.write(`ran: ${command}\n`);
        process.stdout.write(
          result.rebootNeeded ? 'a reboot is needed to drop the old settings\n' : 'no reboot needed\n',
        );
      }
    } finally {
      await target.close();
    }
  });
}
