// igpu-split verify: the end-to-end chain for every node VM, every chain shown (a host or
// API that cannot be read marks its links); exit code = the worst link.

import type { Command } from 'commander';
import { addLabRunOptions, type LabRunOptions, openLabRun, renderChains } from './lab-run.ts';
import { addVerifyTimeout } from './option-checks.ts';
import { jsonText } from './output.ts';

export function registerVerify(program: Command): void {
  const command = addLabRunOptions(
    program.command('verify').description('check every link from host to pod, for each node VM'),
  ).option('--no-smoke', 'skip the smoke pods');
  addVerifyTimeout(command).action(async (options: LabRunOptions & { smoke?: boolean; timeout: number }) => {
    const { exitCodeOf, verifyLab, worstOfChains } = await import('../engine/verify.ts');
    const { lab, connections } = await openLabRun(options);
    try {
      let shown = 0;
      // Each chain is printed as soon as it is verified, not all at the end.
      const chains = await verifyLab(lab, connections, {
        smoke: options.smoke !== false,
        timeoutMs: options.timeout * 1000,
        onChain: options.json
          ? undefined
          : (chain) => process.stdout.write(`${shown++ > 0 ? '\n' : ''}${renderChains([chain])}`),
      });
      if (options.json) process.stdout.write(jsonText('verify', chains));
      // fail 1 > unreachable 2 > pending 3 > warn, pass 0 (README, "Exit codes").
      process.exitCode = exitCodeOf(worstOfChains(chains));
    } finally {
      await connections.close();
    }
  });
}
