// What `igpu-split init` writes: a commented lab file from what the Proxmox API shows —
// the nodes (with their iGPU, when Proxmox sees one) and the VMs chosen as Kubernetes
// nodes — checked with the lab schema before it is written.

import type { NodeVm } from '../config/lab.ts';
import { IgpuSplitError } from '../core/errors.ts';
import { clip } from '../core/text.ts';
import { providerNamed } from '../guest/providers.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { findIgpu } from '../proxmox/igpu.ts';

export interface DiscoveredNode {
  node: string;
  gpu?: string;
  /** Why its PCI devices could not be read (so whether it has an iGPU is unknown). */
  gpuUnread?: string;
  vms: { vmid: number; name?: string; status: string }[];
}

export async function discover(api: ProxmoxApi): Promise<DiscoveredNode[]> {
  const nodes = await api.nodes();
  return Promise.all(
    nodes
      .filter((n) => n.status === 'online')
      .map(async (n) => {
        const [devices, vms] = await Promise.all([
          api.pciDevices(n.node).catch((error: unknown) => {
            // expected: IgpuSplitError — Proxmox refused or failed the read (a token without Sys.Audit): unknown, and said
            if (!(error instanceof IgpuSplitError)) throw error;
            return { unread: clip(error.message, 100) };
          }),
          api.vms(n.node),
        ]);
        const gpu = Array.isArray(devices) ? findIgpu(devices) : undefined;
        return {
          node: n.node,
          gpu: gpu
            ? `${gpu.vendor.replace(/^0x/, '')}:${gpu.device.replace(/^0x/, '')} at ${gpu.id}`
            : undefined,
          ...(Array.isArray(devices) ? {} : { gpuUnread: devices.unread }),
          vms: vms.sort((a, b) => a.vmid - b.vmid),
        };
      }),
  );
}

export interface ChosenVm {
  vmid: number;
  node: string;
  os: NodeVm['os'];
  name?: string;
  /** What its guest provider writes under the entry (guest:, talos: …), once asked. */
  guestLines?: string[];
}

/** Each chosen VM with the keys its guest provider writes, read from the guest where it can. */
export async function withGuestLines(
  chosen: ChosenVm[],
  talosctl: Talosctl | undefined,
): Promise<ChosenVm[]> {
  return Promise.all(
    chosen.map(async (vm) => ({ ...vm, guestLines: await providerNamed(vm.os).initLines(vm, { talosctl }) })),
  );
}

export interface InitAnswers {
  url: string;
  token: string;
  secret: { file: string } | { env: string };
  trust: { fingerprint: string } | { caFile: string } | { system: true };
}

const quote = (text: string) => JSON.stringify(text);

export function labFileText(
  answers: InitAnswers,
  nodes: readonly DiscoveredNode[],
  chosen: readonly ChosenVm[],
): string {
  const secret =
    'file' in answers.secret
      ? `tokenSecretFile: ${quote(answers.secret.file)}`
      : `tokenSecretEnv: ${answers.secret.env}`;
  const trust =
    'fingerprint' in answers.trust
      ? `fingerprint: ${quote(answers.trust.fingerprint)}   # Datacenter → node → Certificates`
      : 'caFile' in answers.trust
        ? `caFile: ${quote(answers.trust.caFile)}`
        : '# no caFile or fingerprint: the system CAs must trust the node certificate';
  const gpuNodes = nodes.filter((n) => n.gpu);
  const lines = [
    '# igpu-split lab file, written by igpu-split init. Schema: docs/schemas/lab.schema.json',
    'proxmox:',
    `  url: ${answers.url}`,
    `  token: ${answers.token}   # the token id; the secret is never written here`,
    `  ${secret}`,
    `  ${trust}`,
    'mapping: iGPU',
    'hosts:   # Proxmox nodes with an Intel iGPU; ssh: lets igpu-split manage the host layer',
    ...gpuNodes.map((n) => `  - { node: ${n.node}, ssh: "ssh://root@${n.node}" }   # ${n.gpu}`),
    ...nodes
      .filter((n) => !n.gpu)
      .map((n) =>
        n.gpuUnread
          ? `  # ${n.node}: its PCI devices could not be read (${n.gpuUnread}); add it if it has an iGPU`
          : `  # ${n.node}: Proxmox lists no Intel iGPU at 00:02.0`,
      ),
    'vms:',
    ...(chosen.length === 0
      ? ['  []   # add the node VMs, e.g. { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }']
      : []),
    ...chosen.flatMap((vm) => [
      `  - vmid: ${vm.vmid}   # ${vm.name ?? 'unnamed'}`,
      `    host: ${vm.node}`,
      `    os: ${vm.os}`,
      '    vgpu: auto',
      ...(vm.name ? [`    kubernetesNode: ${vm.name}`] : []),
      ...(vm.guestLines ?? []),
    ]),
    '# Other VMs Proxmox shows:',
    ...nodes.flatMap((n) =>
      n.vms
        .filter((vm) => !chosen.some((c) => c.vmid === vm.vmid))
        .map((vm) => `#   ${vm.vmid} ${vm.name ?? ''} on ${n.node} (${vm.status})`),
    ),
    'kubernetes:',
    '  plugin: { mode: daemonset, sharedDevNum: 1 }',
    '',
  ];
  return lines.join('\n');
}
