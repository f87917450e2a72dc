// What the VM layer reads before planning: each node VM's config (with its digest) and
// power state, and per Proxmox node the iGPU and its live mdev types.

import type { DesiredVm } from '../config/derived.ts';
import { bounded, READ_CONCURRENCY } from '../core/bounded.ts';
import { parseMdevDescription } from '../linux/parse/mdev.ts';
import type { PciDevice, ProxmoxApi, VmConfig } from '../proxmox/api.ts';
import { findIgpu } from '../proxmox/igpu.ts';
import type { LiveType } from './mdev-type.ts';

export type { DesiredVm };

export interface VmFacts {
  vmid: number;
  node: string;
  config: VmConfig;
  status: 'running' | 'stopped';
}

export interface NodeGpuFacts {
  node: string;
  gpu?: PciDevice;
  types: LiveType[];
  /** SR-IOV hosts: the node's other VMs (not in the lab), whose VFs the pool cannot hand out. */
  others?: VmFacts[];
}

export interface VmLayerFacts {
  vms: VmFacts[];
  nodes: NodeGpuFacts[];
  /** Whether the cluster mapping exists and is marked for mediated devices. */
  mapping?: { name: string; exists: boolean; mdev: boolean };
}

export async function gatherVmFacts(
  api: ProxmoxApi,
  desired: readonly DesiredVm[],
  mappingName: string | undefined,
): Promise<VmLayerFacts> {
  const nodeNames = [...new Set(desired.map((vm) => vm.node))];
  const [vms, nodes, mappings] = await Promise.all([
    bounded(desired, READ_CONCURRENCY, async (vm) => {
      const [config, status] = await Promise.all([
        api.vmConfig(vm.node, vm.vmid),
        api.vmStatus(vm.node, vm.vmid),
      ]);
      return { vmid: vm.vmid, node: vm.node, config, status: status.status };
    }),
    bounded(nodeNames, READ_CONCURRENCY, async (node) => {
      const gpu = findIgpu(await api.pciDevices(node));
      const sriov = desired.some((vm) => vm.node === node && vm.attach === 'vf');
      // An SR-IOV PF offers no mdev types: not asked.
      const types =
        gpu && !sriov
          ? (await api.mdevTypes(node, gpu.id)).map((t) => {
              const sizes = parseMdevDescription(t.description);
              return {
                type: t.type,
                available: t.available,
                lowGmMiB: sizes.lowGmMiB,
                highGmMiB: sizes.highGmMiB,
                fences: sizes.fences,
              };
            })
          : [];
      const others = sriov ? await otherVms(api, node, desired) : undefined;
      return { node, gpu, types, ...(others ? { others } : {}) };
    }),
    mappingName ? api.mappings() : Promise.resolve([]),
  ]);
  // The list does not promise the mdev flag; the mapping's own config does.
  const listed = mappingName ? mappings.find((m) => m.id === mappingName) : undefined;
  const mdev = listed && mappingName ? ((await api.mapping(mappingName)).mdev ?? false) : false;
  return {
    vms,
    nodes,
    mapping: mappingName ? { name: mappingName, exists: listed !== undefined, mdev } : undefined,
  };
}

/** The VMs on a node the lab does not name, with their configs (what VFs they hold). */
async function otherVms(api: ProxmoxApi, node: string, desired: readonly DesiredVm[]): Promise<VmFacts[]> {
  const ours = new Set(desired.map((vm) => vm.vmid));
  const listed = (await api.vms(node)).filter((vm) => !ours.has(vm.vmid));
  return bounded(listed, READ_CONCURRENCY, async (vm) => ({
    vmid: vm.vmid,
    node,
    config: await api.vmConfig(node, vm.vmid),
    status: vm.status === 'running' ? ('running' as const) : ('stopped' as const),
  }));
}
