// igpu-split status: host → VM → Kubernetes node → pods holding a GPU, with what is used
// and free at each level; --mermaid for a graph.

import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { addLabRunOptions, type LabRunOptions, openLabRun } from './lab-run.ts';
import { jsonText } from './output.ts';

export function registerStatus(program: Command): void {
  addLabRunOptions(
    program
      .command('status')
      .description('the lab as a tree: vGPU slots per host, device shares per node, pods'),
  )
    .option('--mermaid', 'print a Mermaid graph instead')
    .action(async (options: LabRunOptions & { mermaid?: boolean }) => {
      // Either is the whole output: one cannot be honoured inside the other.
      if (options.mermaid && options.json)
        throw new UsageError('--mermaid and --json exclude each other', {
          fix: 'pass --mermaid for the graph, or --json for the status as data',
        });
      const { labStatus, renderMermaid, renderStatus } = await import('../engine/status.ts');
      const { lab, connections } = await openLabRun(options);
      try {
        const hosts = await labStatus(lab, connections);
        process.stdout.write(
          options.json
            ? jsonText('status', hosts)
            : options.mermaid
              ? renderMermaid(hosts)
              : renderStatus(hosts),
        );
      } finally {
        await connections.close();
      }
    });
}
