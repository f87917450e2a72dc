// What the guest commands share: the lab file's node VMs, SSH to Ubuntu guests (the same
// knobs as the host commands), talosctl when installed, and gathering + planning each VM.

import type { Command } from 'commander';
import type { HostAccess } from '../access/host.ts';
import type { Lab } from '../config/lab.ts';
import { UsageError } from '../core/errors.ts';
import type { TalosFacts, TalosPlan } from '../guest/talos/plan.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import type { UbuntuGuestFacts } from '../guest/ubuntu/gather.ts';
import type { UbuntuPlan } from '../guest/ubuntu/plan.ts';
import { addSshOptions, type HostOptions, openHost } from './host-options.ts';
import { addRequestTimeout, addVmOption, type TimeoutOptions, timeoutsOf } from './option-checks.ts';

export interface GuestOptions extends HostOptions, TimeoutOptions {
  lab: string;
  vm?: string[];
  json?: boolean;
}

export function addGuestOptions(command: Command): Command {
  command
    .option('--lab <file>', 'the lab file', 'igpu-split.yaml')
    .option('--json', 'print the result as JSON');
  addVmOption(command);
  return addRequestTimeout(addSshOptions(command));
}

export type GuestVm = Lab['vms'][number];

export type GuestWork =
  | { vm: GuestVm; kind: 'ubuntu'; guest: HostAccess; facts: UbuntuGuestFacts; plan: UbuntuPlan }
  | { vm: GuestVm; kind: 'talos'; facts: TalosFacts; plan: TalosPlan };

export async function loadGuests(
  options: GuestOptions,
): Promise<{ lab: Lab; vms: GuestVm[]; talosctl?: Talosctl }> {
  const [{ loadLab }, { findTalosctl, talosctlAt }] = await Promise.all([
    import('../config/load.ts'),
    import('../guest/talos/talosctl.ts'),
  ]);
  const lab = await loadLab(options.lab);
  for (const id of options.vm ?? []) {
    if (!lab.vms.some((vm) => String(vm.vmid) === id))
      throw new UsageError(`--vm ${id}: no such VM in the lab file`, {
        fix: `VMs are: ${lab.vms.map((v) => v.vmid).join(', ')}`,
      });
  }
  const vms = lab.vms.filter((vm) => !options.vm || options.vm.includes(String(vm.vmid)));
  for (const vm of vms) {
    if (vm.os === 'ubuntu' && !vm.guest)
      throw new UsageError(`VM ${vm.vmid} (ubuntu) has no guest: ssh://user@address in the lab file`, {
        fix: 'add it',
      });
    if (vm.os === 'talos' && !vm.talos)
      throw new UsageError(`VM ${vm.vmid} (talos) has no talos: { node, version } in the lab file`, {
        fix: 'add it',
      });
  }
  const bin = await findTalosctl();
  return { lab, vms, talosctl: bin ? talosctlAt(bin) : undefined };
}

export async function openGuest(vm: GuestVm, options: GuestOptions): Promise<HostAccess> {
  return openHost({ ...options, host: vm.guest, root: undefined });
}

/** Gathers and plans one VM; the caller closes `guest` for Ubuntu. */
export async function planGuest(
  vm: GuestVm,
  lab: Lab,
  options: GuestOptions,
  talosctl: Talosctl | undefined,
): Promise<GuestWork> {
  if (vm.os === 'ubuntu') {
    const [{ gatherUbuntuFacts }, { planUbuntu }] = await Promise.all([
      import('../guest/ubuntu/gather.ts'),
      import('../guest/ubuntu/plan.ts'),
    ]);
    const guest = await openGuest(vm, options);
    try {
      const facts = await gatherUbuntuFacts(guest);
      return { vm, kind: 'ubuntu', guest, facts, plan: planUbuntu(facts) };
    } catch (error) {
      await guest.close();
      throw error;
    }
  }
  const [{ gatherTalosFacts, planTalos }, { ImageFactory }, { openLabKube, osImageOf }] = await Promise.all([
    import('../guest/talos/plan.ts'),
    import('../guest/talos/factory.ts'),
    import('../engine/connections.ts'),
  ]);
  const spec = vm.talos as NonNullable<GuestVm['talos']>;
  // Without talosctl the running version comes from the VM's Kubernetes node, when the lab names it.
  const facts = await gatherTalosFacts(
    spec.node,
    talosctl,
    osImageOf(() => openLabKube(lab, timeoutsOf(options)), vm),
  );
  const factory = new ImageFactory(lab.imageFactory, timeoutsOf(options));
  try {
    return { vm, kind: 'talos', facts, plan: await planTalos(spec, facts, factory) };
  } finally {
    await factory.close();
  }
}

/** Why a VM's plan cannot be applied, when that is so. */
export function workRefused(work: GuestWork): string | undefined {
  return work.kind === 'ubuntu' ? work.plan.unsupported : work.plan.refused;
}

export function workTitle(work: GuestWork): string {
  return work.kind === 'ubuntu'
    ? `VM ${work.vm.vmid} — Ubuntu guest ${work.guest.target}`
    : `VM ${work.vm.vmid} — Talos node ${work.plan.node}: installer ${work.plan.installer}`;
}

export async function closeWork(work: GuestWork): Promise<void> {
  if (work.kind === 'ubuntu') await work.guest.close();
}
