// igpu-split mapping …: the cluster PCI mapping the node VMs attach their vGPU through.

import type { Command } from 'commander';
import { RefusedError } from '../core/errors.ts';
import { confirm, NOTHING_DISTURBED } from './confirm.ts';
import { addLabOptions, type LabOptions, openLab } from './lab-options.ts';
import { jsonNeedsYes, YES_HELP } from './option-checks.ts';
import { jsonText, warn } from './output.ts';
import { renderLayerPlan } from './render-plan.ts';

export function registerMapping(program: Command): void {
  const mapping = program
    .command('mapping')
    .description(
      'the cluster PCI mapping (Datacenter → Resource Mappings) that API tokens attach vGPUs through',
    );
  registerMappingPlan(mapping);
  registerMappingApply(mapping);
  registerMappingRollback(mapping);
}

async function planFromLab(options: LabOptions) {
  const [{ gatherMappingFacts, planMapping }, { mappingPrivileges }, opened] = await Promise.all([
    import('../mapping/plan.ts'),
    import('../mapping/apply.ts'),
    openLab(options),
  ]);
  const hosts = [...new Set(opened.lab.vms.map((vm) => vm.host))];
  const plan = planMapping(
    await gatherMappingFacts(
      opened.api,
      opened.lab.mapping,
      hosts.length > 0 ? hosts : opened.lab.hosts.map((h) => h.node),
    ),
  );
  // What the token lacks is named by the plan, and apply refuses on it before any change.
  const lacking = await opened.api.privilegeCheck(mappingPrivileges(plan));
  if (lacking) plan.checks.push(lacking);
  return { plan, ...opened };
}

function registerMappingPlan(mapping: Command): void {
  addLabOptions(
    mapping
      .command('plan')
      .description('show the entries apply would add or repair, and Proxmox drift checks; changes nothing'),
  ).action(async (options: LabOptions) => {
    const { plan, close } = await planFromLab(options);
    try {
      process.stdout.write(
        options.json
          ? jsonText('mapping plan', plan)
          : renderLayerPlan(`igpu-split mapping plan — ${plan.name}`, plan.checks, plan.steps),
      );
      process.exitCode = plan.checks.some((c) => c.status === 'fail') ? 1 : 0;
    } finally {
      await close();
    }
  });
}

function registerMappingApply(mapping: Command): void {
  addLabOptions(mapping.command('apply').description('create or update the mapping (asks unless --yes)'))
    .option('--yes', YES_HELP)
    .action(async (options: LabOptions & { yes?: boolean }) => {
      jsonNeedsYes(options);
      const { plan, api, close } = await planFromLab(options);
      try {
        if (!options.json)
          process.stdout.write(
            renderLayerPlan(`igpu-split mapping plan — ${plan.name}`, plan.checks, plan.steps),
          );
        const failing = plan.checks.find((c) => c.status === 'fail');
        if (failing)
          throw new RefusedError(`mapping ${plan.name} cannot be applied: ${failing.evidence}`, {
            target: api.target,
            fix: failing.fix,
          });
        if (plan.steps.length === 0) {
          if (options.json) process.stdout.write(jsonText('mapping apply', { plan, changed: false }));
          return;
        }
        // A mapping change touches no VM: a running one keeps its vGPU until it restarts.
        if (!options.yes)
          await confirm(`apply to mapping ${plan.name}?`, 'igpu-split mapping plan', NOTHING_DISTURBED);
        const { applyMappingPlan } = await import('../mapping/apply.ts');
        const result = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
          applyMappingPlan(api, plan),
        );
        process.stdout.write(
          options.json
            ? jsonText('mapping apply', { plan, ...result })
            : `mapping ${plan.name} ${plan.create ? 'created' : 'updated'}\n`,
        );
      } finally {
        await close();
      }
    });
}

function registerMappingRollback(mapping: Command): void {
  addLabOptions(
    mapping
      .command('rollback')
      .description(
        "remove igpu-split's entries (and the mapping, if igpu-split made it and nothing else is in it; asks unless --yes)",
      ),
  )
    .option('--yes', YES_HELP)
    .action(async (options: LabOptions & { yes?: boolean }) => {
      jsonNeedsYes(options);
      const opened = await openLab(options);
      try {
        if (!options.yes)
          await confirm(
            `remove igpu-split's entries from mapping ${opened.lab.mapping}?`,
            'igpu-split mapping plan',
            NOTHING_DISTURBED,
          );
        const { rollbackMapping } = await import('../mapping/apply.ts');
        const vms = opened.lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host }));
        const done = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
          rollbackMapping(opened.api, opened.lab.mapping, vms),
        );
        process.stdout.write(
          options.json
            ? jsonText('mapping rollback', { undone: done })
            : `${done.length > 0 ? done.join('\n') : 'nothing of ours in the mapping'}\n`,
        );
      } finally {
        await opened.close();
      }
    });
}
