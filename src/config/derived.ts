// What the layers read off a loaded lab file. Type-only imports keep it cheap for the
// CLI, which loads it before any layer.

import type { GpuNode } from '../cluster/plan.ts';
import type { DesiredVm } from '../vm/gather.ts';
import type { Lab } from './lab.ts';

export function desiredVmsOf(lab: Lab): DesiredVm[] {
  return lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host, vgpu: vm.vgpu }));
}

/** Each VM that names its Kubernetes node offers one vGPU to it. */
export function gpuNodesOf(lab: Lab): GpuNode[] {
  return lab.vms
    .filter((vm) => vm.kubernetesNode)
    .map((vm) => ({ name: vm.kubernetesNode as string, vgpus: 1 }));
}

/** A Proxmox token id is `user@realm!tokenname`. */
export function identityOf(tokenId: string): { user: string; token?: string } {
  const [user, token] = tokenId.split('!');
  return { user: user as string, token };
}
