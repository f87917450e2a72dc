// igpu-split plan: one plan across the layers, grouped by target, with diffs and what each
// step disturbs; changes nothing.

import type { Command } from 'commander';
import { counted } from '../core/text.ts';
import type { LabPlan } from '../engine/plan.ts';
import {
  addLabRunOptions,
  addSkipHostOption,
  type LabRunOptions,
  openLabRun,
  renderLabPlan,
} from './lab-run.ts';
import { jsonText } from './output.ts';
import { addConsentFlags } from './vm-plan.ts';

export function registerPlan(program: Command): void {
  addSkipHostOption(
    addConsentFlags(
      addLabRunOptions(
        program
          .command('plan')
          .description(
            'the whole plan for the lab file: hosts, mapping, VMs, guests, cluster; changes nothing',
          ),
        { parallel: true },
      ),
    ),
  ).action(async (options: LabRunOptions) => {
    const { planExitCode, planLab, planIsEmpty } = await import('../engine/plan.ts');
    const { lab, connections } = await openLabRun(options);
    try {
      const plan = await planLab(lab, connections, {
        ...options,
        parallel: (options.parallel ?? 1) * 8,
        skipHosts: options.skipHost,
        rollout: { parallel: options.parallel ?? 1, allowApiOutage: options.allowApiOutage === true },
      });
      if (options.json) {
        const { planView } = await import('./json.ts');
        process.stdout.write(jsonText('plan', await planView(plan)));
      } else process.stdout.write(`${await renderLabPlan(plan)}\n${planEnd(plan, planIsEmpty(plan))}`);
      // Everything is printed first; then a refusal is 1, a part that could not be read 2.
      process.exitCode = planExitCode(plan);
    } finally {
      await connections.close();
    }
  });
}

/** The plan's last line: converged, or which parts could not be read. */
function planEnd(plan: LabPlan, empty: boolean): string {
  const down = plan.unreachable.length;
  if (down > 0)
    return `${counted(down, 'part')} of the lab could not be reached (UNREACHABLE above): the plan covers the rest\n`;
  return empty ? 'the lab is converged: nothing to do\n' : '';
}
