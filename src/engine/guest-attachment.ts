// From a host's facts to what its node VMs are given (guest/attachment.ts): the host's mode,
// the PF's device id, and the SR-IOV route the host takes. The engine reads the host, so
// the guest layer needs no host code.

import type { HostEntry, Lab, NodeVm } from '../config/lab.ts';
import { attachmentOf, type HostGpu } from '../guest/attachment.ts';
import type { GuestAttachment } from '../guest/provider.ts';
import { providerOf } from '../guest/providers.ts';
import type { HostFacts } from '../host/facts.ts';
import { plannedMode } from '../host/plan.ts';
import { chooseRoute } from '../host/sriov/route.ts';
import { hostVerdict } from '../host/verdict.ts';
import { IGPU_PLATFORMS, type IgpuPlatform } from '../knowledge/igpu-platforms.ts';

export function hostGpuOf(facts: HostFacts, entry: HostEntry | undefined): HostGpu {
  const verdict = hostVerdict(facts);
  const gpu = verdict.gpu;
  const platform = gpu?.platform ? IGPU_PLATFORMS[gpu.platform as IgpuPlatform] : undefined;
  const choice = platform ? chooseRoute(platform, entry?.mode === 'sriov' ? 'sriov' : 'auto') : undefined;
  return {
    // The host plan's own choice of mode (a mode the hardware cannot do: what it can).
    mode: plannedModeOr(verdict, entry?.mode),
    ...(gpu ? { deviceId: gpu.deviceId } : {}),
    ...(choice && 'route' in choice ? { route: { route: choice.route, forceProbe: choice.forceProbe } } : {}),
  };
}

function plannedModeOr(verdict: ReturnType<typeof hostVerdict>, wished: HostEntry['mode'] | undefined) {
  const mode = plannedMode(verdict, wished);
  return (['gvt-g', 'sriov', 'passthrough', 'none'] as const).find((m) => m === mode) ?? verdict.mode;
}

/** Every VM's attachment, from the hosts read (a host not read: the lab file alone). */
export function attachmentsOf(lab: Lab, hosts: ReadonlyMap<string, HostGpu>): Map<number, GuestAttachment> {
  return new Map(lab.vms.map((vm) => [vm.vmid, attachmentOf(lab, vm, hosts.get(vm.host))]));
}

/** The driver a VM's guest binds to its GPU (the plugin's resource is named after it), and whether it is a VF. */
export function gpuDriverOf(
  vm: NodeVm,
  attachment: GuestAttachment | undefined,
): { driver: 'i915' | 'xe'; vf: boolean } {
  const given = attachment ?? { kind: 'mdev' as const };
  return { driver: providerOf(vm).gpuDriver(vm, given), vf: given.kind === 'vf' };
}
