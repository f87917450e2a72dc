// What the guest commands share: the lab file's node VMs, SSH to Ubuntu guests (the same
// knobs as the host commands), talosctl when installed, and each VM's guest layer through
// the provider of its OS (src/guest/providers.ts) — no command branches on the OS.

import type { Command } from 'commander';
import type { Lab, NodeVm } from '../config/lab.ts';
import { UsageError } from '../core/errors.ts';
import type { GuestLayer, GuestPlan } from '../guest/provider.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import { addSshOptions, type HostOptions, openHost } from './host-options.ts';
import {
  addLabOption,
  addRequestTimeout,
  addVmOption,
  JSON_HELP,
  type TimeoutOptions,
  timeoutsOf,
} from './option-checks.ts';

export interface GuestOptions extends HostOptions, TimeoutOptions {
  lab: string;
  vm?: string[];
  json?: boolean;
}

export function addGuestOptions(command: Command): Command {
  addLabOption(command).option('--json', JSON_HELP);
  addVmOption(command);
  return addRequestTimeout(addSshOptions(command));
}

/** A VM's guest layer and, once gathered, its facts and plan. */
export interface GuestWork {
  vm: NodeVm;
  layer: GuestLayer;
  facts: unknown;
  plan: GuestPlan;
}

/** The lab's node VMs the command works on, each with its guest layer; `close` lets go of them. */
export interface Guests {
  lab: Lab;
  talosctl?: Talosctl;
  layers: { vm: NodeVm; layer: GuestLayer }[];
  close(): Promise<void>;
}

export async function loadGuests(
  options: GuestOptions,
  waits: { rebootTimeoutMs?: number; outRoot?: string } = {},
): Promise<Guests> {
  const [
    { loadLab },
    { findTalosctl, talosctlAt },
    { providerOf },
    { ImageFactory },
    { openLabKube, osImageOf },
    { attachmentOf },
  ] = await Promise.all([
    import('../config/load.ts'),
    import('../guest/talos/talosctl.ts'),
    import('../guest/providers.ts'),
    import('../guest/talos/factory.ts'),
    import('../engine/connections.ts'),
    import('../guest/attachment.ts'),
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
    const missing = providerOf(vm).missing(vm);
    if (missing) throw new UsageError(missing, { fix: 'add it' });
  }
  const bin = await findTalosctl();
  const talosctl = bin ? talosctlAt(bin) : undefined;
  const factory = new ImageFactory(lab.imageFactory, timeoutsOf(options));
  const environment = {
    openShell: (vm: NodeVm) => openHost({ ...options, host: vm.guest, root: undefined }),
    talosctl,
    factory,
    // Without talosctl the running version comes from the VM's Kubernetes node, when the lab names it.
    osImage: (vm: NodeVm) => osImageOf(() => openLabKube(lab, timeoutsOf(options)), vm),
    outRoot: waits.outRoot ?? 'igpu-split-talos',
    rebootTimeoutMs: waits.rebootTimeoutMs,
  };
  // What each VM is given, from the lab file (the whole-lab commands also read the host):
  // a VM on a host the lab says `mode: sriov` for gets a VF and the guest driver package.
  const layers = vms.map((vm) => ({
    vm,
    layer: providerOf(vm).layer(vm, { ...environment, attachment: (one: NodeVm) => attachmentOf(lab, one) }),
  }));
  return {
    lab,
    talosctl,
    layers,
    close: async () => {
      for (const { layer } of layers) await layer.close();
      await factory.close();
    },
  };
}

/** Gathers and plans one VM's guest. */
export async function planGuest({ vm, layer }: { vm: NodeVm; layer: GuestLayer }): Promise<GuestWork> {
  const facts = await layer.gather();
  return { vm, layer, facts, plan: layer.plan(facts) };
}
