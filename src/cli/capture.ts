// igpu-split capture: pack the files doctor reads, for a bug report.

import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { addHostOptions, type HostOptions, hostTargets } from './host-options.ts';

export function registerCapture(program: Command, version: string): void {
  const command = program
    .command('capture')
    .description(
      'pack exactly the files doctor reads into a .tar.gz (for bug reports; `doctor --root` reads it back)',
    )
    .requiredOption('--out <file>', 'archive to write, e.g. pve1.tar.gz');
  addHostOptions(command, true).action(async (options: HostOptions & { out: string }, self: Command) => {
    if (!/\.(tar\.gz|tgz)$/.test(options.out)) {
      throw new UsageError(`--out must name a .tar.gz file, not ${options.out}`);
    }
    const { targets } = await hostTargets(options, self, false);
    // One archive holds one host.
    if (targets.length !== 1)
      throw new UsageError(`capture packs one host; the lab file has ${targets.length}`, {
        fix: `name one with --host (${targets.map((t) => t.node).join(', ')})`,
      });
    const { captureHost } = await import('../capture/capture.ts');
    const target = targets[0] as (typeof targets)[number];
    const host = await target.open();
    try {
      // A lab host's folder is named after its node: name, not its address.
      const result = await captureHost(host, options.out, version, target.node);
      process.stdout.write(
        `captured ${result.files} files from ${host.target} into ${options.out}\n` +
          `read it back with: tar xzf ${options.out} && igpu-split doctor --root ${result.folder}\n`,
      );
    } finally {
      await host.close();
    }
  });
}
