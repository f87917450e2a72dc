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
      const types = gpu
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
      return { node, gpu, types };
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
