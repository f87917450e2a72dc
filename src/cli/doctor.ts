// igpu-split doctor: what this host's iGPU can do and what stands in the way.

import type { Command } from 'commander';
import { addHostOptions, type HostOptions, onEachHost } from './host-options.ts';
import { addJsonOption } from './option-checks.ts';
import { renderDoctor } from './render-doctor.ts';

export function registerDoctor(program: Command, _version: string): void {
  // --json: the report of docs/doctor-json.md in the envelope.
  const command = addJsonOption(
    program
      .command('doctor')
      .description('check whether a host can share its Intel iGPU, how many vGPUs it gives, and what to fix'),
  );
  addHostOptions(command, true).action(async (options: HostOptions & { json?: boolean }, self: Command) => {
    const { runDoctor } = await import('../host/doctor.ts');
    await onEachHost(options, self, false, async (target, run) => {
      const host = await target.open();
      try {
        const report = await runDoctor(host);
        run.json = report;
        if (!options.json) process.stdout.write(renderDoctor(report));
        run.code = report.result === 'fail' ? 1 : 0;
      } finally {
        await host.close();
      }
    });
  });
}
