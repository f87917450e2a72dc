// The topology as it is now: Proxmox host → VM → Kubernetes node → pods holding
// gpu.intel.com/i915 (in DRA mode: the node's devices and the claims on each), with vGPU
// slots used/free per host and device shares used/free per node; as a text tree or a
// Mermaid graph.

import { RESOURCE_API } from '../cluster/dra-objects.ts';
import { claimResults, devicesByNode } from '../cluster/dra-verify.ts';
import type { KubeObject } from '../cluster/kube.ts';
import { RESOURCE } from '../cluster/verify.ts';
import type { Lab } from '../config/lab.ts';
import { IgpuSplitError } from '../core/errors.ts';
import { DRA_DRIVER } from '../knowledge/dra.ts';
import { HOSTPCI, HOSTPCI_KEY } from '../proxmox/api-spec.ts';
import { findIgpu } from '../proxmox/igpu.ts';
import { parsePropertyString } from '../proxmox/property-string.ts';
import { vfUsage } from '../vm/vf.ts';
import type { LabConnections, LabVm } from './connections.ts';

export interface StatusPod {
  name: string;
  gpus: number;
}

/** A DRA device of a node and the claims allocated to it (admin claims marked). */
export interface StatusDevice {
  name: string;
  claims: { name: string; admin: boolean }[];
}

/** A Kubernetes node's device shares as read. */
export interface StatusNode {
  name: string;
  allocatable: number;
  used: number;
  pods: StatusPod[];
  /** DRA mode: the node's devices as its ResourceSlices list them, with their claims. */
  devices?: StatusDevice[];
}

/** A Kubernetes node whose shares could not be read: why, in one line (never shown as free). */
export interface StatusNodeUnknown {
  name: string;
  unknown: string;
}

export interface StatusVm {
  vmid: number;
  name?: string;
  running: boolean;
  vgpu?: string;
  node?: StatusNode | StatusNodeUnknown;
}

export interface StatusHost {
  node: string;
  types: { type: string; available: number }[];
  used: Record<string, number>;
  /** SR-IOV hosts: the VF pool's VFs on this host, used and free. */
  vfs?: { used: number; free: number };
  vms: StatusVm[];
}

/** A read that failed: its one-line reason, for the model to carry as unknown. */
class Unread {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

/**
 * A Kubernetes read, or why it could not be made. KubeApi turns every refusal (RBAC, a 5xx,
 * no connection) into an IgpuSplitError; anything else is a bug and is thrown.
 */
async function read<T>(run: () => Promise<T>): Promise<T | Unread> {
  try {
    return await run();
  } catch (error) {
    // expected: IgpuSplitError — Kubernetes refused or could not answer; shown as unknown
    if (error instanceof IgpuSplitError) return new Unread(error.oneLine());
    throw error;
  }
}

export function isNodeUnknown(node: StatusVm['node']): node is StatusNodeUnknown {
  return node !== undefined && 'unknown' in node;
}

/** Claims by the device they hold (`pool/device`), read once for the whole lab. */
type ClaimsByDevice = Map<string, { name: string; admin: boolean }[]>;

interface DraRead {
  devices: Map<string, { pool: string; name: string }[]>;
  claims: ClaimsByDevice;
}

async function readDra(connections: LabConnections): Promise<DraRead | Unread> {
  const devices = await read(() => devicesByNode(connections.kube));
  if (devices instanceof Unread) return devices;
  const claims = await read(() => connections.kube.list(RESOURCE_API, 'ResourceClaim'));
  if (claims instanceof Unread) return claims;
  const byDevice: ClaimsByDevice = new Map();
  for (const claim of claims) {
    const results = claimResults(claim);
    for (const r of results) {
      const key = `${r.pool}/${r.device}`;
      byDevice.set(key, [
        ...(byDevice.get(key) ?? []),
        { name: `${claim.metadata.namespace}/${claim.metadata.name}`, admin: r.adminAccess === true },
      ]);
    }
  }
  return { devices, claims: byDevice };
}

export async function labStatus(lab: Lab, connections: LabConnections): Promise<StatusHost[]> {
  const pods = await read(() => connections.kube.list('v1', 'Pod'));
  const dra = lab.kubernetes.allocator === 'dra' ? await readDra(connections) : undefined;
  const pool = await vfPoolUsage(lab, connections);
  const hosts: StatusHost[] = [];
  for (const host of lab.hosts) {
    // A host without node VMs is shown too: its free slots are what a new VM could take.
    const vms = lab.vms.filter((vm) => vm.host === host.node);
    const entry: StatusHost = {
      node: host.node,
      types: await mdevTypes(connections, host.node),
      used: {},
      ...(pool.has(host.node) ? { vfs: pool.get(host.node) } : {}),
      vms: [],
    };
    for (const vm of vms) {
      const status = await vmStatus(connections, vm, pods, lab.sriov.mapping, dra);
      if (status.vgpu && status.running) entry.used[status.vgpu] = (entry.used[status.vgpu] ?? 0) + 1;
      entry.vms.push(status);
    }
    hosts.push(entry);
  }
  return hosts;
}

/** VFs used and free per host of the VF pool (none when the lab has no pool yet). */
async function vfPoolUsage(
  lab: Lab,
  connections: LabConnections,
): Promise<Map<string, { used: number; free: number }>> {
  if (!(await connections.proxmox.mappings()).some((m) => m.id === lab.sriov.mapping)) return new Map();
  const pool = await connections.proxmox.mapping(lab.sriov.mapping);
  const vms = await Promise.all(
    lab.vms.map(async (vm) => {
      const [config, status] = await Promise.all([
        connections.proxmox.vmConfig(vm.host, vm.vmid),
        connections.proxmox.vmStatus(vm.host, vm.vmid),
      ]);
      return { vmid: vm.vmid, node: vm.host, running: status.status === 'running', config: config.values };
    }),
  );
  return new Map(
    vfUsage({ name: lab.sriov.mapping, map: pool.map }, vms).map((u) => [
      u.node,
      { used: u.used, free: u.free },
    ]),
  );
}

async function mdevTypes(connections: LabConnections, node: string): Promise<StatusHost['types']> {
  const gpu = findIgpu(await connections.proxmox.pciDevices(node));
  if (!gpu) return [];
  return (await connections.proxmox.mdevTypes(node, gpu.id)).map((t) => ({
    type: t.type,
    available: t.available,
  }));
}

async function vmStatus(
  connections: LabConnections,
  vm: LabVm,
  pods: KubeObject[] | Unread,
  pool: string,
  dra?: DraRead | Unread,
): Promise<StatusVm> {
  const [config, status] = await Promise.all([
    connections.proxmox.vmConfig(vm.host, vm.vmid),
    connections.proxmox.vmStatus(vm.host, vm.vmid),
  ]);
  const hostpci = Object.entries(config.values).filter(([key]) => HOSTPCI_KEY.test(key));
  const vgpu =
    hostpci
      .map(([, value]) => parsePropertyString(value, HOSTPCI).mdev)
      .find((mdev): mdev is string => typeof mdev === 'string') ??
    (hostpci.some(([, value]) => parsePropertyString(value, HOSTPCI).mapping === pool)
      ? 'virtual function'
      : undefined);
  const node = vm.kubernetesNode
    ? dra
      ? draNodeStatus(vm.kubernetesNode, dra)
      : await nodeStatus(connections, vm.kubernetesNode, pods)
    : undefined;
  return { vmid: vm.vmid, name: config.values.name, running: status.status === 'running', vgpu, node };
}

async function nodeStatus(
  connections: LabConnections,
  name: string,
  pods: KubeObject[] | Unread,
): Promise<StatusNode | StatusNodeUnknown> {
  if (pods instanceof Unread) return { name, unknown: pods.reason };
  const live = await read(() => connections.kube.get('v1', 'Node', name));
  if (live instanceof Unread) return { name, unknown: live.reason };
  // A node the cluster does not have offers nothing.
  const allocatable = Number(
    (live?.status as { allocatable?: Record<string, string> } | undefined)?.allocatable?.[RESOURCE] ?? 0,
  );
  const holding = pods
    .filter(
      (p) =>
        p.spec?.nodeName === name &&
        !['Succeeded', 'Failed'].includes(String((p.status as { phase?: string })?.phase)),
    )
    .map((p) => ({
      name: `${p.metadata.namespace}/${p.metadata.name}`,
      gpus: ((p.spec?.containers ?? []) as { resources?: { limits?: Record<string, string> } }[]).reduce(
        (sum, c) => sum + Number(c.resources?.limits?.[RESOURCE] ?? 0),
        0,
      ),
    }))
    .filter((p) => p.gpus > 0);
  return { name, allocatable, used: holding.reduce((s, p) => s + p.gpus, 0), pods: holding };
}

/** DRA mode: the node's devices and the claims on each; a device is used while an ordinary claim holds it. */
function draNodeStatus(name: string, dra: DraRead | Unread): StatusNode | StatusNodeUnknown {
  if (dra instanceof Unread) return { name, unknown: dra.reason };
  const devices = (dra.devices.get(name) ?? []).map((d) => ({
    name: d.name,
    claims: dra.claims.get(`${d.pool}/${d.name}`) ?? [],
  }));
  const used = devices.filter((d) => d.claims.some((c) => !c.admin)).length;
  return { name, allocatable: devices.length, used, pods: [], devices };
}

/** A host's vGPU slots: `V5_4 1 used / 1 free`, per type in use, or each type's free count. */
export function slotsText(host: StatusHost): string {
  if (host.vfs) return `virtual functions ${host.vfs.used} used / ${host.vfs.free} free`;
  const short = (type: string) => type.replace('i915-GVTg_', '');
  const slots = Object.entries(host.used).map(([type, used]) => {
    const free = host.types.find((t) => t.type === type)?.available ?? 0;
    return `${short(type)} ${used} used / ${free} free`;
  });
  if (slots.length > 0) return slots.join(', ');
  const free = host.types.map((t) => `${short(t.type)} ${t.available} free`).join(', ');
  return `none used (${free || 'no mdev types'})`;
}

export function renderStatus(hosts: readonly StatusHost[]): string {
  const lines: string[] = [];
  for (const host of hosts) {
    lines.push(
      `${host.node}  ${host.vfs ? '' : 'vGPU slots: '}${slotsText(host)}${host.vms.length === 0 ? '; no node VM' : ''}`,
    );
    host.vms.forEach((vm, i) => {
      const lastVm = i === host.vms.length - 1;
      lines.push(
        `${lastVm ? '└─' : '├─'} VM ${vm.vmid}${vm.name ? ` ${vm.name}` : ''}  ${vm.vgpu ?? 'no vGPU'}, ${vm.running ? 'running' : 'stopped'}`,
      );
      if (vm.node) lines.push(...nodeLines(vm.node, lastVm ? '   ' : '│  '));
    });
  }
  return `${lines.join('\n')}\n`;
}

function nodeLines(node: StatusNode | StatusNodeUnknown, pad: string): string[] {
  if (isNodeUnknown(node)) return [`${pad}└─ node ${node.name}  ${RESOURCE}: unknown (${node.unknown})`];
  if (node.devices) {
    const devices = node.devices;
    return [
      `${pad}└─ node ${node.name}  ${DRA_DRIVER.driverName}: ${node.used} used / ${node.allocatable - node.used} free`,
      ...devices.map((device, j) => {
        const claims = device.claims.map((c) => `${c.name}${c.admin ? ' (admin)' : ''}`).join(', ');
        return `${pad}   ${j === devices.length - 1 ? '└─' : '├─'} device ${device.name}  ${claims ? `claims: ${claims}` : 'no claim'}`;
      }),
    ];
  }
  return [
    `${pad}└─ node ${node.name}  ${RESOURCE}: ${node.used} used / ${Math.max(0, node.allocatable - node.used)} free`,
    ...node.pods.map(
      (pod, j) => `${pad}   ${j === node.pods.length - 1 ? '└─' : '├─'} pod ${pod.name} (${pod.gpus})`,
    ),
  ];
}

export function renderMermaid(hosts: readonly StatusHost[]): string {
  const id = (text: string) => text.replace(/[^A-Za-z0-9]/g, '_');
  const lines = ['graph TD'];
  for (const host of hosts) {
    const h = id(`host_${host.node}`);
    lines.push(`  ${h}["${host.node}<br/>vGPU slots: ${slotsText(host)}"]`);
    for (const vm of host.vms) {
      const v = id(`vm_${vm.vmid}`);
      lines.push(
        `  ${v}["VM ${vm.vmid}${vm.name ? ` ${vm.name}` : ''}<br/>${vm.vgpu ?? 'no vGPU'}"]`,
        `  ${h} --> ${v}`,
      );
      const node = vm.node;
      if (!node) continue;
      const n = id(`node_${node.name}`);
      const shares = isNodeUnknown(node) ? 'unknown' : `${node.used}/${node.allocatable}`;
      const unit = !isNodeUnknown(node) && node.devices ? 'DRA devices' : 'i915';
      lines.push(`  ${n}["node ${node.name}<br/>${shares} ${unit}"]`, `  ${v} --> ${n}`);
      if (isNodeUnknown(node)) continue;
      for (const pod of node.pods) {
        const p = id(`pod_${pod.name}`);
        lines.push(`  ${p}["${pod.name}"]`, `  ${n} --> ${p}`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}
