// What the layers read off a loaded lab file: the desired state in the shapes the VM and
// cluster layers take. The types live here, with the lab file, so config imports no layer.

import { MAX_IGPU_VFS } from '../knowledge/igpu-platforms.ts';
import type { Lab } from './lab.ts';

/**
 * How a node VM gets its share of the iGPU: a GVT-g mediated device (`mdev`, through the
 * lab's `mapping`) or one SR-IOV virtual function (`vf`, through the VF pool `sriov.mapping`).
 */
export type Attach = 'mdev' | 'vf';

/** A node VM as the VM layer wants it. */
export interface DesiredVm {
  vmid: number;
  /** The Proxmox node it runs on. */
  node: string;
  /** An mdev type such as `i915-GVTg_V5_4`, or `auto` (the only value a VF attachment takes). */
  vgpu: string;
  /** Absent: `mdev` (what every VM got before SR-IOV). The engine sets it from the host plan's mode. */
  attach?: Attach;
}

/**
 * An SR-IOV host as the mapping and VM layers take it from the engine: the physical
 * function's address and how many VFs the host plan makes (its VF pool entries, in order).
 */
export interface SriovHost {
  node: string;
  /** `0000:00:02.0` */
  pfBdf: string;
  vfs: number;
}

/**
 * The VFs a host makes: `hosts[].vfs` when given, else (`auto`) one per node VM on it;
 * never more than the device offers (`sriov_totalvfs`, itself at most MAX_IGPU_VFS) and at
 * least 1 (a host told to do SR-IOV with no VM yet still gets a VF to test with).
 * `short` is set when the VMs outnumber the VFs: the one-line refusal `plan` shows.
 */
export function plannedVfs(
  requested: number | 'auto',
  vmsOnHost: number,
  totalVfs: number,
  node = 'this host',
): { vfs: number; short?: string } {
  const cap = Math.max(0, Math.min(totalVfs, MAX_IGPU_VFS));
  const vfs = Math.min(requested === 'auto' ? Math.max(1, vmsOnHost) : requested, cap);
  if (vmsOnHost <= vfs) return { vfs };
  return { vfs, short: tooFewVfs(node, vmsOnHost, vfs, requested, cap) };
}

/** The one line for a host whose node VMs outnumber its VFs, with the fix that fits. */
export function tooFewVfs(
  node: string,
  vms: number,
  vfs: number,
  requested: number | 'auto',
  cap: number,
): string {
  const fix =
    requested !== 'auto' && requested < cap
      ? `set vfs: ${Math.min(vms, cap)} on host ${node} (or vfs: auto)`
      : `move ${vms - vfs} of them to another host (this iGPU offers at most ${cap} VFs, sriov_totalvfs)`;
  return `${node}: ${vms} node VMs but ${vfs} virtual functions — one VF per VM; ${fix}`;
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

/**
 * The lab's VMs for the VM layer; a VM on one of `sriovNodes` (the hosts the host plan
 * shares by SR-IOV) is attached by VF, every other one by mediated device.
 */
export function desiredVmsOf(lab: Lab, sriovNodes: ReadonlySet<string> = new Set()): DesiredVm[] {
  return lab.vms.map((vm) => ({
    vmid: vm.vmid,
    node: vm.host,
    vgpu: vm.vgpu,
    ...(sriovNodes.has(vm.host) ? { attach: 'vf' as const } : {}),
  }));
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

/** What the lab asks of one host: its mode, its VF count, how many node VMs it carries, the SR-IOV driver package. */
export interface HostWishes {
  mode: 'auto' | 'gvt-g' | 'sriov' | 'passthrough';
  vfs: number | 'auto';
  vmsOnHost: number;
  driver?: { file?: string; url?: string; sha256?: string };
  /** The lab's kernelGuard settings; absent: not strict, 30 days. */
  guard?: { strict: boolean; maxPinDays: number };
}

export function hostWishesOf(lab: Lab, node: string): HostWishes {
  const host = lab.hosts.find((h) => h.node === node);
  return {
    mode: host?.mode ?? 'auto',
    vfs: host?.vfs ?? 'auto',
    vmsOnHost: lab.vms.filter((vm) => vm.host === node).length,
    ...(lab.sriov.hostDriver ? { driver: lab.sriov.hostDriver } : {}),
    guard: lab.kernelGuard,
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
