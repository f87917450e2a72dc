// The topology as it is now: Proxmox host → VM → Kubernetes node → pods holding
// gpu.intel.com/i915, with vGPU slots used/free per host and device shares used/free per
// node; as a text tree or a Mermaid graph.

import { RESOURCE } from '../cluster/verify.ts';
import type { Lab } from '../config/lab.ts';
import { HOSTPCI, HOSTPCI_KEY } from '../proxmox/api-spec.ts';
import { findIgpu } from '../proxmox/igpu.ts';
import { parsePropertyString } from '../proxmox/property-string.ts';
import type { LabConnections } from './connections.ts';

export interface StatusPod {
  name: string;
  gpus: number;
}

export interface StatusVm {
  vmid: number;
  name?: string;
  running: boolean;
  vgpu?: string;
  node?: { name: string; allocatable: number; used: number; pods: StatusPod[] };
}

export interface StatusHost {
  node: string;
  types: { type: string; available: number }[];
  used: Record<string, number>;
  vms: StatusVm[];
}

export async function labStatus(lab: Lab, connections: LabConnections): Promise<StatusHost[]> {
  const pods = await connections.kube.list('v1', 'Pod').catch(() => []);
  const hosts: StatusHost[] = [];
  for (const host of lab.hosts) {
    const vms = lab.vms.filter((vm) => vm.host === host.node);
    if (vms.length === 0) continue;
    const devices = await connections.proxmox.pciDevices(host.node);
    const gpu = findIgpu(devices);
    const types = gpu
      ? (await connections.proxmox.mdevTypes(host.node, gpu.id)).map((t) => ({
          type: t.type,
          available: t.available,
        }))
      : [];
    const entry: StatusHost = { node: host.node, types, used: {}, vms: [] };
    for (const vm of vms) {
      const [config, status] = await Promise.all([
        connections.proxmox.vmConfig(vm.host, vm.vmid),
        connections.proxmox.vmStatus(vm.host, vm.vmid),
      ]);
      const vgpu = Object.entries(config.values)
        .filter(([key]) => HOSTPCI_KEY.test(key))
        .map(([, value]) => parsePropertyString(value, HOSTPCI).mdev)
        .find((mdev): mdev is string => typeof mdev === 'string');
      const running = status.status === 'running';
      if (vgpu && running) entry.used[vgpu] = (entry.used[vgpu] ?? 0) + 1;
      let node: StatusVm['node'];
      if (vm.kubernetesNode) {
        const live = await connections.kube.get('v1', 'Node', vm.kubernetesNode).catch(() => undefined);
        const allocatable = Number(
          (live?.status as { allocatable?: Record<string, string> } | undefined)?.allocatable?.[RESOURCE] ??
            0,
        );
        const holding = pods
          .filter(
            (p) =>
              p.spec?.nodeName === vm.kubernetesNode &&
              !['Succeeded', 'Failed'].includes(String((p.status as { phase?: string })?.phase)),
          )
          .map((p) => ({
            name: `${p.metadata.namespace}/${p.metadata.name}`,
            gpus: (
              (p.spec?.containers ?? []) as { resources?: { limits?: Record<string, string> } }[]
            ).reduce((sum, c) => sum + Number(c.resources?.limits?.[RESOURCE] ?? 0), 0),
          }))
          .filter((p) => p.gpus > 0);
        node = {
          name: vm.kubernetesNode,
          allocatable,
          used: holding.reduce((s, p) => s + p.gpus, 0),
          pods: holding,
        };
      }
      entry.vms.push({ vmid: vm.vmid, name: config.values.name, running, vgpu, node });
    }
    hosts.push(entry);
  }
  return hosts;
}

export function renderStatus(hosts: readonly StatusHost[]): string {
  const lines: string[] = [];
  for (const host of hosts) {
    const slots = Object.entries(host.used).map(([type, used]) => {
      const free = host.types.find((t) => t.type === type)?.available ?? 0;
      return `${type.replace('i915-GVTg_', '')} ${used} used / ${free} free`;
    });
    lines.push(
      `${host.node}  vGPU slots: ${slots.join(', ') || `none used (${host.types.map((t) => `${t.type.replace('i915-GVTg_', '')} ${t.available} free`).join(', ') || 'no mdev types'})`}`,
    );
    host.vms.forEach((vm, i) => {
      const lastVm = i === host.vms.length - 1;
      lines.push(
        `${lastVm ? '└─' : '├─'} VM ${vm.vmid}${vm.name ? ` ${vm.name}` : ''}  ${vm.vgpu ?? 'no vGPU'}, ${vm.running ? 'running' : 'stopped'}`,
      );
      const pad = lastVm ? '   ' : '│  ';
      const node = vm.node;
      if (node) {
        lines.push(
          `${pad}└─ node ${node.name}  ${RESOURCE}: ${node.used} used / ${Math.max(0, node.allocatable - node.used)} free`,
        );
        node.pods.forEach((pod, j) => {
          lines.push(`${pad}   ${j === node.pods.length - 1 ? '└─' : '├─'} pod ${pod.name} (${pod.gpus})`);
        });
      }
    });
  }
  return `${lines.join('\n')}\n`;
}

export function renderMermaid(hosts: readonly StatusHost[]): string {
  const id = (text: string) => text.replace(/[^A-Za-z0-9]/g, '_');
  const lines = ['graph TD'];
  for (const host of hosts) {
    const h = id(`host_${host.node}`);
    lines.push(`  ${h}["${host.node}"]`);
    for (const vm of host.vms) {
      const v = id(`vm_${vm.vmid}`);
      lines.push(
        `  ${v}["VM ${vm.vmid}${vm.name ? ` ${vm.name}` : ''}<br/>${vm.vgpu ?? 'no vGPU'}"]`,
        `  ${h} --> ${v}`,
      );
      if (vm.node) {
        const n = id(`node_${vm.node.name}`);
        lines.push(
          `  ${n}["node ${vm.node.name}<br/>${vm.node.used}/${vm.node.allocatable} i915"]`,
          `  ${v} --> ${n}`,
        );
        for (const pod of vm.node.pods) {
          const p = id(`pod_${pod.name}`);
          lines.push(`  ${p}["${pod.name}"]`, `  ${n} --> ${p}`);
        }
      }
    }
  }
  return `${lines.join('\n')}\n`;
}
