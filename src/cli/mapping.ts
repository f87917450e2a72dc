// igpu-split mapping …: the cluster PCI mapping the node VMs attach their vGPU through.

import type { Command } from 'commander';
import { RefusedError } from '../core/errors.ts';
import { confirm, NOTHING_DISTURBED } from './confirm.ts';
import { addLabOptions, desiredVms, type LabOptions, openLab } from './lab-options.ts';
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

/**
 * The GVT-g mapping for the GVT-g hosts and, when the lab has SR-IOV hosts, the VF pool
 * (sriov.mapping) with an entry per VF Proxmox lists (a host makes its VFs at its reboot).
 */
async function planFromLab(options: LabOptions) {
  const [
    { gatherMappingFacts, planMapping },
    { gatherVfPoolFacts, planVfPool },
    { mappingPrivileges },
    opened,
  ] = await Promise.all([
    import('../mapping/plan.ts'),
    import('../mapping/vf-pool.ts'),
    import('../mapping/apply.ts'),
    openLab(options),
  ]);
  const { sriovHosts } = await desiredVms(opened);
  const sriov = new Set(sriovHosts.map((h) => h.node));
  const used = [...new Set(opened.lab.vms.map((vm) => vm.host))];
  const hosts = (used.length > 0 ? used : opened.lab.hosts.map((h) => h.node)).filter(
    (node) => !sriov.has(node),
  );
  const plan = planMapping(await gatherMappingFacts(opened.api, opened.lab.mapping, hosts));
  const pool =
    sriovHosts.length > 0
      ? planVfPool(await gatherVfPoolFacts(opened.api, opened.lab.sriov.mapping, sriovHosts))
      : undefined;
  // What the token lacks is named by the plan, and apply refuses on it before any change.
  for (const one of [plan, ...(pool ? [pool] : [])]) {
    const lacking = await opened.api.privilegeCheck(mappingPrivileges(one));
    if (lacking) one.checks.push(lacking);
  }
  return { plan, pool, ...opened };
}

type MappingPlanOf = Awaited<ReturnType<typeof planFromLab>>['plan'];

/** Each mapping's plan as text, the VF pool after the GVT-g one. */
function renderPlans(plans: readonly MappingPlanOf[]): string {
  return plans
    .map((p) => renderLayerPlan(`igpu-split mapping plan — ${p.name}`, p.checks, p.steps))
    .join('\n');
}

/** `--json`: the GVT-g mapping's plan as before, the VF pool's under `vfPool` when there is one. */
const jsonPlan = (plan: MappingPlanOf, pool: MappingPlanOf | undefined) =>
  pool ? { ...plan, vfPool: pool } : plan;

function registerMappingPlan(mapping: Command): void {
  addLabOptions(
    mapping
      .command('plan')
      .description('show the entries apply would add or repair, and Proxmox drift checks; changes nothing'),
  ).action(async (options: LabOptions) => {
    const { plan, pool, close } = await planFromLab(options);
    const plans = [plan, ...(pool ? [pool] : [])];
    try {
      process.stdout.write(
        options.json ? jsonText('mapping plan', jsonPlan(plan, pool)) : renderPlans(plans),
      );
      process.exitCode = plans.some((p) => p.checks.some((c) => c.status === 'fail')) ? 1 : 0;
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
      const { plan, pool, api, close } = await planFromLab(options);
      const plans = [plan, ...(pool ? [pool] : [])];
      try {
        if (!options.json) process.stdout.write(renderPlans(plans));
        for (const one of plans) {
          const failing = one.checks.find((c) => c.status === 'fail');
          if (failing)
            throw new RefusedError(`mapping ${one.name} cannot be applied: ${failing.evidence}`, {
              target: api.target,
              fix: failing.fix,
            });
        }
        const changing = plans.filter((p) => p.steps.length > 0);
        if (changing.length === 0) {
          if (options.json)
            process.stdout.write(jsonText('mapping apply', { plan: jsonPlan(plan, pool), changed: false }));
          return;
        }
        // A mapping change touches no VM: a running one keeps its vGPU until it restarts.
        if (!options.yes)
          await confirm(
            `apply to mapping ${changing.map((p) => p.name).join(' and ')}?`,
            'igpu-split mapping plan',
            NOTHING_DISTURBED,
          );
        const { applyMappingPlan } = await import('../mapping/apply.ts');
        const results = await (await import('../engine/lab-run.ts')).withLabLock(
          options.lab,
          warn,
          async () => {
            const done = [];
            for (const one of changing) done.push(await applyMappingPlan(api, one));
            return done;
          },
        );
        process.stdout.write(
          options.json
            ? jsonText('mapping apply', {
                plan: jsonPlan(plan, pool),
                changed: results.some((r) => r.changed),
              })
            : changing.map((p) => `mapping ${p.name} ${p.create ? 'created' : 'updated'}\n`).join(''),
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
            `remove igpu-split's entries from mapping ${opened.lab.mapping} (and ${opened.lab.sriov.mapping})?`,
            'igpu-split mapping plan',
            NOTHING_DISTURBED,
          );
        const { rollbackMapping } = await import('../mapping/apply.ts');
        const vms = opened.lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host }));
        const done = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, async () => [
          ...(await rollbackMapping(opened.api, opened.lab.mapping, vms)),
          ...(await rollbackMapping(opened.api, opened.lab.sriov.mapping, vms)),
        ]);
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
