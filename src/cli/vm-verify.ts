// igpu-split vm verify: each node VM has its vGPU in the config, runs, and holds the mdev.

import type { Command } from 'commander';
import {
  addLabOptions,
  addVmFilter,
  desiredVms,
  type LabOptions,
  openLab,
  vfOptions,
} from './lab-options.ts';
import { jsonText } from './output.ts';
import { renderChecks } from './render-doctor.ts';

export function registerVmVerify(vm: Command): void {
  addVmFilter(
    addLabOptions(vm.command('verify').description('check each node VM has its vGPU and runs with it')),
  ).action(async (options: LabOptions) => {
    const { verifyVms } = await import('../vm/verify.ts');
    const opened = await openLab(options);
    try {
      const { desired, sriovHosts } = await desiredVms(opened, options.vm);
      const checks = await verifyVms(opened.api, desired, {
        mapping: opened.lab.mapping,
        ...vfOptions(opened.lab, sriovHosts),
      });
      process.stdout.write(options.json ? jsonText('vm verify', checks) : renderChecks(checks));
      process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
    } finally {
      await opened.close();
    }
  });
}
