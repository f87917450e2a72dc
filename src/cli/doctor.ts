// igpu-split doctor: what this host's iGPU can do and what stands in the way.

import type { Command } from 'commander';
import { addHostOptions, type HostOptions, openHost } from './host-options.ts';
import { jsonText } from './output.ts';
import { renderDoctor } from './render-doctor.ts';

export function registerDoctor(program: Command, _version: string): void {
  const command = program
    .command('doctor')
    .description('check whether a host can share its Intel iGPU, how many vGPUs it gives, and what to fix')
    .option('--json', 'print one JSON object (see docs/doctor-json.md) instead of the report');
  addHostOptions(command, true).action(async (options: HostOptions & { json?: boolean }) => {
    const { runDoctor } = await import('../host/doctor.ts');
    const host = await openHost(options);
    try {
      const report = await runDoctor(host);
      process.stdout.write(options.json ? jsonText('doctor', report) : renderDoctor(report));
      process.exitCode = report.result === 'fail' ? 1 : 0;
    } finally {
      await host.close();
    }
  });
}
