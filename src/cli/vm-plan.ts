// igpu-split vm plan: the checks and config changes for each node VM; changes nothing.

import type { Command } from 'commander';
import { identityOf } from '../config/derived.ts';
import type { VmPlan, VmPlanOptions } from '../vm/plan.ts';
import {
  addLabOptions,
  addVmFilter,
  desiredVms,
  type LabOptions,
  type OpenLab,
  openLab,
  vfOptions,
} from './lab-options.ts';
import { jsonText } from './output.ts';
import { renderLayerPlan } from './render-plan.ts';

export interface ConsentFlags {
  changeMachine?: boolean;
  resetEfiKeys?: boolean;
}

export const CHANGE_MACHINE_HELP =
  'allow changing the machine type to q35 and removing a guest vIOMMU (the guest sees new PCI addresses)';
export const RESET_EFI_HELP =
  'allow recreating an EFI disk that has Secure Boot keys enrolled, without them: Secure Boot off, NVRAM boot entries reset (the old disk is kept as unusedN)';

export function addConsentFlags(command: Command): Command {
  return command.option('--change-machine', CHANGE_MACHINE_HELP).option('--reset-efi-keys', RESET_EFI_HELP);
}

export async function planFromLab(
  options: LabOptions & ConsentFlags,
): Promise<{ plan: VmPlan; opened: OpenLab }> {
  const [{ gatherVmFacts }, { planVms }, { vmPlanPrivileges }] = await Promise.all([
    import('../vm/gather.ts'),
    import('../vm/plan.ts'),
    import('../vm/apply.ts'),
  ]);
  const opened = await openLab(options);
  try {
    const { desired, sriovHosts } = await desiredVms(opened, options.vm);
    const planOptions: VmPlanOptions = {
      mapping: opened.lab.mapping,
      ...vfOptions(opened.lab, sriovHosts),
      identity: identityOf(opened.lab.proxmox.token),
      changeMachine: options.changeMachine === true,
      resetEfiKeys: options.resetEfiKeys === true,
    };
    const plan = planVms(await gatherVmFacts(opened.api, desired, opened.lab.mapping), desired, planOptions);
    // What the token lacks is named here, not by apply after the first VM stopped.
    const lacking = await opened.api.privilegeCheck(vmPlanPrivileges(plan));
    if (lacking) {
      plan.checks.push(lacking);
      plan.refused ??= lacking.evidence;
    }
    return { plan, opened };
  } catch (error) {
    // expected: anything — rethrown once the connections opened above are closed
    await opened.close();
    throw error;
  }
}

export function renderVmPlan(plan: VmPlan): string {
  return renderLayerPlan(
    'igpu-split vm plan',
    plan.checks,
    plan.changes.flatMap((c) => c.steps),
  );
}

export function registerVmPlan(vm: Command): void {
  addConsentFlags(
    addVmFilter(
      addLabOptions(
        vm
          .command('plan')
          .description('show what vm apply would change; changes nothing (exit 1 when it cannot be applied)'),
      ),
    ),
  ).action(async (options: LabOptions & ConsentFlags) => {
    const { plan, opened } = await planFromLab(options);
    try {
      process.stdout.write(options.json ? jsonText('vm plan', plan) : renderVmPlan(plan));
      process.exitCode = plan.refused ? 1 : 0;
    } finally {
      await opened.close();
    }
  });
}
