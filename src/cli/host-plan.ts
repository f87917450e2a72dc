// igpu-split host plan: what apply would change, with diffs; changes nothing.

import type { Command } from 'commander';
import type { HostPlan } from '../host/plan.ts';
import { addHostOptions, type HostOptions, labWishes, onEachHost } from './host-options.ts';
import { addJsonOption } from './option-checks.ts';

export const ACS_HELP =
  'add pcie_acs_override=downstream,multifunction: splits IOMMU groups the hardware does not isolate, so a VM ' +
  'may reach other devices in the same group by DMA. Never needed for GVT-g (mediated devices do not use groups)';

export function registerHostPlan(host: Command): void {
  const plan = addJsonOption(
    host
      .command('plan')
      .description(
        'show what apply would change on the host, with diffs; changes nothing (exit 1 when it cannot be applied)',
      ),
  ).option('--acs-override', ACS_HELP);
  addHostOptions(plan, true).action(
    async (options: HostOptions & { json?: boolean; acsOverride?: boolean }, command: Command) => {
      const [{ gatherHostFacts }, { planHost }] = await Promise.all([
        import('../host/gather.ts'),
        import('../host/plan.ts'),
      ]);
      await onEachHost(options, command, false, async (host, run) => {
        const target = await host.open();
        try {
          const result = planHost(await gatherHostFacts(target), {
            acsOverride: options.acsOverride === true,
            ...labWishes(host),
          });
          run.json = result;
          if (!options.json) process.stdout.write(renderPlan(result));
          const blocked = result.unsupported !== undefined || result.problems.length > 0;
          run.code = blocked ? 1 : 0;
        } finally {
          await target.close();
        }
      });
    },
  );
}

export function renderPlan(plan: HostPlan): string {
  const lines = [`igpu-split host plan — ${plan.target}`, '', `  mode ${plan.mode}`];
  // `cannot plan: …` says it already; a mode that is not planned is said as such.
  if (plan.unsupported)
    return `${[...lines, `  ${/^cannot plan/.test(plan.unsupported) ? '' : 'not planned: '}${plan.unsupported}`].join('\n')}\n`;
  if (plan.params.present.length > 0)
    lines.push(`  already on the command line (yours, kept): ${plan.params.present.join(' ')}`);
  for (const stale of plan.staleModules) {
    lines.push(
      `  note: ${stale.path}:${stale.line} lists ${stale.name}, ${stale.why}; harmless, remove it when convenient`,
    );
  }
  for (const problem of plan.problems) lines.push(`  problem: ${problem}`);
  for (const note of plan.notes) lines.push(`  note: ${note}`);
  lines.push('');
  if (plan.steps.length === 0) {
    lines.push('  nothing to do: this host is converged');
  } else {
    plan.steps.forEach((step, index) => {
      const force = step.needsForce ? '  [needs --force]' : '';
      const disturbs = step.disturbs.length > 0 ? `  [disturbs: ${step.disturbs.join(', ')}]` : '';
      lines.push(`  ${index + 1}. ${step.description}${force}${disturbs}`);
      if (step.command) lines.push(`       $ ${step.command}`);
      if (step.diff) {
        for (const line of step.diff.split('\n').filter((l) => l !== '' && !l.startsWith('====')))
          lines.push(`       ${line}`);
      }
    });
    lines.push('', plan.reboot ? '  a reboot is needed' : '  no reboot needed');
  }
  return `${lines.join('\n')}\n`;
}
