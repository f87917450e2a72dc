// What the layers read off a loaded lab file: the desired state in the shapes the VM and
// cluster layers take. The types live here, with the lab file, so config imports no layer.

import type { Lab } from './lab.ts';

/** A node VM as the VM layer wants it. */
export interface DesiredVm {
  vmid: number;
  /** The Proxmox node it runs on. */
  node: string;
  /** An mdev type such as `i915-GVTg_V5_4`, or `auto`. */
  vgpu: string;
}

/** A Kubernetes node that is to offer vGPUs. */
export interface GpuNode {
  name: string;
  /** vGPUs on it: one per node VM. */
  vgpus: number;
}

export function desiredVmsOf(lab: Lab): DesiredVm[] {
  return lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host, vgpu: vm.vgpu }));
}

/** Each VM that names its Kubernetes node offers one vGPU to it. */
export function gpuNodesOf(lab: Lab): GpuNode[] {
  return lab.vms
    .filter((vm) => vm.kubernetesNode)
    .map((vm) => ({ name: vm.kubernetesNode as string, vgpus: 1 }));
}

/** What the lab asks of one host: its mode, its VF count, how many node VMs it carries, the SR-IOV driver package. */
export interface HostWishes {
  mode: 'auto' | 'gvt-g' | 'sriov' | 'passthrough';
  vfs: number | 'auto';
  vmsOnHost: number;
  driver?: { file?: string; url?: string; sha256?: string };
}

export function hostWishesOf(lab: Lab, node: string): HostWishes {
  const host = lab.hosts.find((h) => h.node === node);
  return {
    mode: host?.mode ?? 'auto',
    vfs: host?.vfs ?? 'auto',
    vmsOnHost: lab.vms.filter((vm) => vm.host === node).length,
    ...(lab.sriov.hostDriver ? { driver: lab.sriov.hostDriver } : {}),
  };
}

/** A Proxmox token id is `user@realm!tokenname`. */
export function identityOf(tokenId: string): { user: string; token?: string } {
  const [user, token] = tokenId.split('!');
  return { user: user as string, token };
}

/**
 * The Kubernetes node of a VM of the lab file, by vmid (what a restart of it drains); none
 * for a VM that is no node, or when the command was told not to drain (`drain: false`).
 */
export function kubernetesNodeOf(lab: Lab, drain = true): (vmid: number) => string | undefined {
  return (vmid) => (drain ? lab.vms.find((vm) => vm.vmid === vmid)?.kubernetesNode : undefined);
}
