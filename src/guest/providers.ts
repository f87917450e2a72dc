// The guest providers by the `os` a lab file's VM entry names. The mapped type makes a
// new member of the lab file's VM union fail to compile until its provider is listed.

import type { NodeVm } from '../config/lab.ts';
import type { GuestEnvironment, GuestLayer, GuestProvider } from './provider.ts';
import { talosProvider } from './talos/layer.ts';
import { ubuntuProvider } from './ubuntu/layer.ts';

const PROVIDERS: { [Os in NodeVm['os']]: GuestProvider<Extract<NodeVm, { os: Os }>> } = {
  ubuntu: ubuntuProvider,
  talos: talosProvider,
};

/** The provider of a VM's guest OS. */
export function providerOf<Vm extends NodeVm>(vm: Vm): GuestProvider<Vm> {
  // The lookup is by the VM's own `os`, so the provider takes exactly this VM's shape.
  return PROVIDERS[vm.os] as unknown as GuestProvider<Vm>;
}

/** The guest layer of a VM, or undefined when the lab file gives no way to reach its guest. */
export function guestLayer(vm: NodeVm, environment: GuestEnvironment): GuestLayer | undefined {
  const provider = providerOf(vm);
  return provider.missing(vm) === undefined ? provider.layer(vm, environment) : undefined;
}

/** The guest OSes a lab file's VM entry can name, as `os:` takes them. */
export const GUEST_OSES = Object.keys(PROVIDERS) as NodeVm['os'][];

/** The provider of a guest OS by name (init's choice). */
export function providerNamed(os: NodeVm['os']): GuestProvider {
  return PROVIDERS[os] as unknown as GuestProvider;
}
