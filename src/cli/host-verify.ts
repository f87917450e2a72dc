// igpu-split host verify: after the reboot, does the host run what we configured?

import type { Command } from 'commander';
import { addHostOptions, type HostOptions, onEachHost } from './host-options.ts';
import { addJsonOption } from './option-checks.ts';
import { renderChecks } from './render-doctor.ts';

export function registerHostVerify(host: Command): void {
  const command = addJsonOption(
    host
      .command('verify')
      .description(
        'check the running host: our kernel parameters live, IOMMU, GVT-g, kvmgt, vGPU types and counts',
      ),
  );
  addHostOptions(command, true).action(async (options: HostOptions & { json?: boolean }, self: Command) => {
    const [{ gatherHostFacts }, { readState }, { verifyHost }] = await Promise.all([
      import('../host/gather.ts'),
      import('../host/apply.ts'),
      import('../host/verify.ts'),
    ]);
    await onEachHost(options, self, false, async (host, run) => {
      const target = await host.open();
      try {
        const state = options.root ? undefined : await readState(target);
        const checks = verifyHost(await gatherHostFacts(target), state);
        run.json = checks;
        if (!options.json) process.stdout.write(renderChecks(checks));
        run.code = checks.some((c) => c.status === 'fail') ? 1 : 0;
      } finally {
        await target.close();
      }
    });
  });
}
