// igpu-split plan: one plan across the layers, grouped by target, with diffs and what each
// step disturbs; changes nothing.

import type { Command } from 'commander';
import { addLabRunOptions, type LabRunOptions, openLabRun, renderLabPlan } from './lab-run.ts';
import { jsonText } from './output.ts';
import { addConsentFlags } from './vm-plan.ts';

export function registerPlan(program: Command): void {
  addConsentFlags(
    addLabRunOptions(
      program
        .command('plan')
        .description(
          'the whole plan for the lab file: hosts, mapping, VMs, guests, cluster; changes nothing',
        ),
      { parallel: true },
    ),
  ).action(async (options: LabRunOptions) => {
    const { planLab, planIsEmpty, planRefusal } = await import('../engine/plan.ts');
    const { lab, connections } = await openLabRun(options);
    try {
      const plan = await planLab(lab, connections, { ...options, parallel: (options.parallel ?? 1) * 8 });
      if (options.json) {
        const { planView } = await import('./json.ts');
        process.stdout.write(jsonText('plan', await planView(plan)));
      } else
        process.stdout.write(
          `${await renderLabPlan(plan)}\n${planIsEmpty(plan) ? 'the lab is converged: nothing to do\n' : ''}`,
        );
      process.exitCode = planRefusal(plan) ? 1 : 0;
    } finally {
      await connections.close();
    }
  });
}
