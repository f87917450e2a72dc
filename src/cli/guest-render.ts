// igpu-split guest render --out DIR: the files a GitOps user commits (cloud-init
// user-data for Ubuntu VMs; the schematic and machine-config patch for Talos nodes).

import type { Command } from 'commander';
import { addConnectTimeout, addRequestTimeout, type TimeoutOptions, timeoutsOf } from './option-checks.ts';

export function registerGuestRender(guest: Command): void {
  const command = guest
    .command('render')
    .description('write cloud-init user-data (Ubuntu) and the schematic and patch (Talos) for every node VM')
    .requiredOption('--out <dir>', 'the folder to write into (one subfolder per VM)')
    .option('--lab <file>', 'the lab file', 'igpu-split.yaml');
  addRequestTimeout(addConnectTimeout(command)).action(
    async (options: { out: string; lab: string } & TimeoutOptions) => {
      const [{ loadLab }, { renderGuests }] = await Promise.all([
        import('../config/load.ts'),
        import('../guest/render.ts'),
      ]);
      const files = await renderGuests(await loadLab(options.lab), options.out, timeoutsOf(options));
      process.stdout.write(`${files.map((f) => `wrote ${f}`).join('\n')}\n`);
    },
  );
}
