// igpu-split host verify: after the reboot, does the host run what we configured?

import type { Command } from 'commander';
import { addHostOptions, type HostOptions, openHost } from './host-options.ts';
import { jsonText } from './output.ts';
import { renderChecks } from './render-doctor.ts';

export function registerHostVerify(host: Command): void {
  const command = host
    .command('verify')
    .description(
      'check the running host: our kernel parameters live, IOMMU, GVT-g, kvmgt, vGPU types and counts',
    )
    .option('--json', 'print the checks as JSON');
  addHostOptions(command, true).action(async (options: HostOptions & { json?: boolean }) => {
    const [{ gatherHostFacts }, { readState }, { verifyHost }] = await Promise.all([
      import('../host/gather.ts'),
      import('../host/apply.ts'),
      import('../host/verify.ts'),
    ]);
    const target = await openHost(options);
    try {
      const state = options.root ? undefined : await readState(target);
      const checks = verifyHost(await gatherHostFacts(target), state);
      process.stdout.write(options.json ? jsonText('host verify', checks) : renderChecks(checks));
      process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
    } finally {
      await target.close();
    }
  });
}
