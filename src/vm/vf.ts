// VMs on SR-IOV hosts: each gets one virtual function through the VF pool mapping
// (`hostpciN: mapping=<pool>,pcie=1`, q35 as for a vGPU), never the physical function and
// never an mdev. Proxmox hands out the first free VF of the node at VM start (qemu-server
// src/PVE/QemuServer/PCI.pm @ e6352be6, choose_hostpci_devices), so the plan counts: VMs
// that want a VF against the VFs the host makes minus those other VMs hold.

import type { Check } from '../core/model.ts';
import { counted } from '../core/text.ts';
import { MAX_IGPU_VFS } from '../knowledge/igpu-platforms.ts';
import { HOSTPCI, HOSTPCI_KEY, PCI_MAP_ENTRY } from '../proxmox/api-spec.ts';
import { fullBdf, vfPaths } from '../proxmox/igpu.ts';
import { PropertyStringError, parsePropertyString } from '../proxmox/property-string.ts';
import type { DesiredVm, VmFacts, VmLayerFacts } from './gather.ts';
import type { VmPlanOptions } from './plan.ts';

/** A hostpci value that attaches through the VF pool (no raw address, no mdev). */
export function isVfPoolValue(value: string, pool: string | undefined): boolean {
  if (pool === undefined) return false;
  try {
    const parsed = parsePropertyString(value, HOSTPCI);
    return parsed.mapping === pool && parsed.host === undefined && parsed.mdev === undefined;
  } catch (error) {
    // expected: PropertyStringError — a value that does not parse is no VF attachment; anything else is rethrown
    if (!(error instanceof PropertyStringError)) throw error;
    return false;
  }
}

/** The raw addresses a hostpci value names (`;` separates them), in Proxmox's full form. */
function rawAddresses(value: string): string[] {
  const host = parsePropertyString(value, HOSTPCI).host;
  return host === undefined ? [] : String(host).split(';').map(fullBdf);
}

/** Whether a hostpci value gives the physical function: its raw address, the whole device, or the GVT-g mapping. */
export function isPfValue(value: string, pfBdf: string, gvtMapping: string | undefined): boolean {
  const parsed = parsePropertyString(value, HOSTPCI);
  if (parsed.mapping !== undefined) return gvtMapping !== undefined && parsed.mapping === gvtMapping;
  const pf = fullBdf(pfBdf);
  return rawAddresses(value).some((id) => id === pf || `${id}.0` === pf);
}

/** The VF of this PF a hostpci value names by raw address, if any. */
export function rawVf(value: string, pfBdf: string, vfs: number): string | undefined {
  const ours = new Set(vfPaths(fullBdf(pfBdf), Math.max(vfs, MAX_IGPU_VFS)).map(fullBdf));
  return rawAddresses(value).find((id) => ours.has(id));
}

/** What a VM the lab does not name holds on this host: a VF by raw address, or one from the pool while it runs. */
function heldBy(
  vm: VmFacts,
  pfBdf: string,
  vfs: number,
  pool: string | undefined,
): { vmid: number; key: string; what: string }[] {
  return Object.entries(vm.config.values)
    .filter(([key]) => HOSTPCI_KEY.test(key))
    .flatMap(([key, value]) => {
      const vf = rawVf(value, pfBdf, vfs);
      if (vf) return [{ vmid: vm.vmid, key, what: vf }];
      return isVfPoolValue(value, pool) && vm.status === 'running'
        ? [{ vmid: vm.vmid, key, what: String(pool) }]
        : [];
    });
}

/** Per SR-IOV host: do the VMs that want a VF fit in what the host makes and others leave? */
export function vfNodeCheck(
  node: string,
  facts: VmLayerFacts,
  vfVms: readonly DesiredVm[],
  options: VmPlanOptions,
): Check {
  const id = `vm.${node}.vgpu`;
  const host = options.vfHosts?.[node];
  const nodeFacts = facts.nodes.find((n) => n.node === node);
  if (!nodeFacts?.gpu)
    return {
      id,
      status: 'fail',
      evidence: `Proxmox lists no Intel iGPU at 00:02.0 on ${node}`,
      fix: `run igpu-split doctor and host apply on ${node}`,
    };
  if (!host || options.vfPool === undefined)
    return {
      id,
      status: 'fail',
      evidence: `${node}: no VF count planned for this SR-IOV host`,
      fix: `plan the whole lab (igpu-split plan), which plans the VFs of ${node} with its host`,
    };
  const want = vfVms.filter((vm) => vm.node === node).length;
  const held = (nodeFacts.others ?? []).flatMap((vm) => heldBy(vm, host.pfBdf, host.vfs, options.vfPool));
  const free = host.vfs - held.length;
  if (want <= free)
    return {
      id,
      status: 'pass',
      evidence: `${node}: one virtual function each for ${counted(want, 'VM')} through mapping ${options.vfPool}; ${counted(host.vfs, 'VF')}, ${free - want} left over`,
    };
  if (held.length === 0)
    return {
      id,
      status: 'fail',
      evidence: `${node}: ${want} node VMs but ${host.vfs} virtual functions — one VF per VM`,
      fix: `set vfs: ${Math.min(want, MAX_IGPU_VFS)} (or auto) on host ${node}, or move VMs to another host (an iGPU offers at most its sriov_totalvfs)`,
    };
  return {
    id,
    status: 'fail',
    evidence: `${node}: ${want} node VMs need a virtual function but only ${Math.max(free, 0)} of ${host.vfs} are free: in use by ${held.map((h) => `VM ${h.vmid} (${h.key}: ${h.what})`).join(', ')}`,
    fix: `free ${held.map((h) => `qm set ${h.vmid} --delete ${h.key}`).join('; ')}, or raise vfs on host ${node}`,
  };
}

/** Why this VM on an SR-IOV host cannot be given a VF as it is, or undefined. */
export function vfRefusal(vm: DesiredVm, current: VmFacts, options: VmPlanOptions): Check | undefined {
  const id = `vm.${vm.vmid}.hostpci`;
  if (vm.vgpu !== 'auto')
    return {
      id,
      status: 'fail',
      evidence: `VM ${vm.vmid}: vgpu ${vm.vgpu} is a GVT-g type, but ${vm.node} shares its iGPU by SR-IOV (virtual functions, no mdev types)`,
      fix: `set vgpu: auto for VM ${vm.vmid}: it gets one virtual function`,
    };
  const host = options.vfHosts?.[vm.node];
  if (!host) return undefined; // said once for the node by vfNodeCheck
  for (const [key, value] of Object.entries(current.config.values)) {
    if (!HOSTPCI_KEY.test(key)) continue;
    if (isPfValue(value, host.pfBdf, options.mapping))
      return {
        id,
        status: 'fail',
        evidence: `VM ${vm.vmid}: ${key}: ${value} gives the physical function ${fullBdf(host.pfBdf)} of ${vm.node}; on an SR-IOV host the PF is never given to a VM (every VF goes down with it)`,
        fix: `remove it (qm set ${vm.vmid} --delete ${key}); the VM gets a virtual function through mapping ${options.vfPool}`,
      };
    const vf = rawVf(value, host.pfBdf, host.vfs);
    if (vf)
      return {
        id,
        status: 'fail',
        evidence: `VM ${vm.vmid}: ${key} holds VF ${vf} by raw address, outside the pool ${options.vfPool}`,
        fix: `remove it (qm set ${vm.vmid} --delete ${key}); igpu-split attaches a VF through mapping ${options.vfPool}`,
      };
  }
  return undefined;
}

/** One SR-IOV host's VFs as `status` shows them. */
export interface VfUsage {
  node: string;
  /** Entries the pool has for the node (the VFs Proxmox may hand out). */
  vfs: number;
  used: number;
  free: number;
  /** Who holds them: running VMs attached through the pool, and VMs holding a pooled VF by raw address. */
  users: { vmid: number; key: string }[];
}

/**
 * VFs used and free per SR-IOV host, from what the mapping and VM layers read: the pool's
 * map (GET /cluster/mapping/pci/{id}) and the VMs of each node with their configs and power
 * state. The API does not say which VF a running VM got (Proxmox keeps that in its own
 * reservation file), so each running VM attached through the pool counts one, and a VM
 * holding one of the pool's VFs by raw address counts that one.
 */
export function vfUsage(
  pool: { name: string; map: readonly string[] },
  vms: readonly { vmid: number; node: string; running: boolean; config: Record<string, string> }[],
): VfUsage[] {
  const pathsOf = new Map<string, Set<string>>();
  for (const entry of pool.map) {
    const parsed = parsePropertyString(entry, PCI_MAP_ENTRY);
    const node = String(parsed.node);
    const paths = pathsOf.get(node) ?? new Set<string>();
    for (const path of String(parsed.path).split(';')) paths.add(fullBdf(path));
    pathsOf.set(node, paths);
  }
  return [...pathsOf].map(([node, paths]) => {
    const users = vms
      .filter((vm) => vm.node === node)
      .flatMap((vm) =>
        Object.entries(vm.config)
          .filter(([key]) => HOSTPCI_KEY.test(key))
          .filter(
            ([, value]) =>
              (vm.running && isVfPoolValue(value, pool.name)) ||
              rawAddresses(value).some((id) => paths.has(id)),
          )
          .map(([key]) => ({ vmid: vm.vmid, key })),
      );
    const used = Math.min(users.length, paths.size);
    return { node, vfs: paths.size, used, free: paths.size - used, users };
  });
}
