// igpu-split verify: the end-to-end chain for every node VM; exit code = the worst link.

import type { Command } from 'commander';
import { addLabRunOptions, type LabRunOptions, openLabRun, renderChains } from './lab-run.ts';
import { jsonText } from './output.ts';

export function registerVerify(program: Command): void {
  addLabRunOptions(
    program.command('verify').description('check every link from host to pod, for each node VM'),
  )
    .option('--no-smoke', 'skip the smoke pods')
    .action(async (options: LabRunOptions & { smoke?: boolean }) => {
      const { verifyLab, worstOfChains } = await import('../engine/verify.ts');
      const { lab, connections } = await openLabRun(options);
      try {
        const chains = await verifyLab(lab, connections, { smoke: options.smoke !== false });
        process.stdout.write(options.json ? jsonText('verify', chains) : renderChains(chains));
        const worst = worstOfChains(chains);
        process.exitCode = worst === 'fail' ? 1 : 0;
      } finally {
        await connections.close();
      }
    });
}
