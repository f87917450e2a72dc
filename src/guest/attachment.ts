// What a node VM is given of its host's iGPU, from the lab file and what the host's plan
// decided: the guest providers plan from it (provider.ts GuestAttachment). The host layer's
// facts reach it as plain values (the engine reads them), so the guest layer imports no
// other layer.

import type { Lab, NodeVm } from '../config/lab.ts';
import { type GuestAttachment, MDEV } from './provider.ts';

/** What the host's plan says about its iGPU: its mode, the PF's device id and its SR-IOV route. */
export interface HostGpu {
  mode: string;
  /** `46d1` */
  deviceId?: string;
  route?: { route: 'i915-sriov-dkms' | 'xe'; forceProbe: boolean };
}

/**
 * The attachment of a VM: a VF when its host's lab entry says `mode: sriov`, or says `auto`
 * and the host's plan chose SR-IOV; else today's mdev. Without the host's read (no ssh:, or
 * `guest render`) an explicit `sriov` host is taken to use i915-sriov-dkms, the route of
 * every platform that has both (knowledge/igpu-platforms.ts lists it first).
 */
export function attachmentOf(lab: Lab, vm: NodeVm, host?: HostGpu): GuestAttachment {
  const entry = lab.hosts.find((h) => h.node === vm.host);
  const mode = entry && entry.mode !== 'auto' ? entry.mode : host?.mode;
  if (mode !== 'sriov') return MDEV;
  const guestPackage = lab.sriov.guestDriver ?? lab.sriov.hostDriver;
  return {
    kind: 'vf',
    host: vm.host,
    ...(host?.deviceId ? { pfDeviceId: host.deviceId.replace(/^0x/, '').toLowerCase() } : {}),
    route: host?.route?.route ?? 'i915-sriov-dkms',
    forceProbe: host?.route?.forceProbe ?? false,
    explicit: entry?.mode === 'sriov',
    ...(guestPackage ? { guestPackage } : {}),
    // A guest that carries i915-sriov-dkms gets the kernel guard with the lab's settings.
    kernelGuard: lab.kernelGuard,
  };
}
