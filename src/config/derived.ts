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
  /**
   * The driver its guest binds to the GPU (absent: i915): the device plugin names the node's
   * resource after it, gpu.intel.com/i915 or gpu.intel.com/xe (a Talos node on an SR-IOV VF).
   */
  driver?: 'i915' | 'xe';
  /** Its VM has an SR-IOV virtual function (the smoke check then says whether the VF renders). */
  vf?: true;
}

export function desiredVmsOf(lab: Lab): DesiredVm[] {
  return lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host, vgpu: vm.vgpu }));
}

/**
 * Each VM that names its Kubernetes node offers one vGPU to it; `driverOf` tells the driver
 * its guest binds (known once the hosts are read), else i915.
 */
export function gpuNodesOf(
  lab: Lab,
  driverOf?: (vm: Lab['vms'][number]) => { driver: 'i915' | 'xe'; vf: boolean },
): GpuNode[] {
  return lab.vms
    .filter((vm) => vm.kubernetesNode)
    .map((vm) => {
      const gpu = driverOf?.(vm);
      return {
        name: vm.kubernetesNode as string,
        vgpus: 1,
        ...(gpu?.driver === 'xe' ? { driver: gpu.driver } : {}),
        ...(gpu?.vf ? { vf: true as const } : {}),
      };
    });
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
