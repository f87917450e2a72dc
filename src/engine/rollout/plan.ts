// The rollout part of a lab plan: what each host's turn takes down (every VM a reboot stops,
// mapped to Kubernetes nodes by SMBIOS uuid), the budget in nodes, etcd membership, and the
// waves the engine runs. Read: every VM of each host (Proxmox), every Kubernetes node.

import type { Lab } from '../../config/lab.ts';
import { bounded } from '../../core/bounded.ts';
import { type Check, disturbancesOf, type Step } from '../../core/model.ts';
import { SMBIOS1 } from '../../proxmox/api-spec.ts';
import { parsePropertyString } from '../../proxmox/property-string.ts';
import type { LabConnections } from '../connections.ts';
import { disturbingSteps, type HostPart } from '../plan.ts';
import {
  type Budget,
  budgetInNodes,
  disruptionOf,
  type HostDisruption,
  nodesByUuid,
  type RolloutNode,
  type RolloutVm,
} from './budget.ts';
import { type RolloutRefusal, scheduleRollout } from './schedule.ts';

/**
 * The labels that make a node an etcd member (the key counts, not its value): K3s sets
 * `node-role.kubernetes.io/control-plane=true` and `…/etcd=true` on servers (k3s-io/k3s
 * pkg/util/labels.go and pkg/etcd/metadata_controller.go, read in the search index); Talos sets
 * the control-plane role with an empty value on every control-plane node, each of which runs
 * etcd (siderolabs/talos pkg/machinery/constants/constants.go and
 * internal/app/machined/pkg/controllers/k8s/node_label_spec.go @v1.13.9).
 */
export const MEMBER_LABELS = [
  'node-role.kubernetes.io/control-plane',
  'node-role.kubernetes.io/etcd',
] as const;

export interface RolloutRead {
  vms: Map<string, RolloutVm[]>;
  nodes: RolloutNode[];
}

export interface RolloutPlan {
  budget: number;
  /** `2 (the default: the most nodes on one host)`. */
  budgetFrom: string;
  clusterNodes: number;
  /** etcd members, by node name. */
  members: string[];
  tolerance: number;
  disruptions: HostDisruption[];
  waves: string[][];
  refusals: RolloutRefusal[];
  /** What quorum health is judged by, for the plan. */
  signals: string[];
}

/**
 * Every VM of each host (the lab's configs are passed in: the VM layer read them already) and
 * every Kubernetes node. `limit` bounds the hosts read at once.
 */
export async function gatherRollout(
  lab: Lab,
  connections: LabConnections,
  hosts: readonly string[],
  known: ReadonlyMap<number, Record<string, unknown>>,
  limit: number,
): Promise<RolloutRead> {
  const labVms = new Set(lab.vms.map((vm) => vm.vmid));
  const vms = new Map<string, RolloutVm[]>();
  // One call for the whole cluster: a fleet has hundreds of hosts.
  const everyVm = Map.groupBy(
    (await connections.proxmox.clusterVms()).filter((vm) => vm.type === undefined || vm.type === 'qemu'),
    (vm) => vm.node,
  );
  await bounded(hosts, limit, async (node) => {
    const listed = everyVm.get(node) ?? [];
    const read = await Promise.all(
      listed.map(async (vm) => {
        const values = known.get(vm.vmid) ?? (await connections.proxmox.vmConfig(node, vm.vmid)).values;
        const smbios = values.smbios1;
        const uuid = typeof smbios === 'string' ? parsePropertyString(smbios, SMBIOS1).uuid : undefined;
        return {
          vmid: vm.vmid,
          ...(vm.name ? { name: vm.name } : {}),
          running: vm.status === 'running',
          ...(typeof uuid === 'string' ? { uuid } : {}),
          lab: labVms.has(vm.vmid),
        };
      }),
    );
    vms.set(node, read);
  });
  const nodes = (await connections.kube.list('v1', 'Node')).map((node) => ({
    name: node.metadata.name,
    ...(typeof (node.status as { nodeInfo?: { systemUUID?: unknown } } | undefined)?.nodeInfo?.systemUUID ===
    'string'
      ? { systemUUID: (node.status as { nodeInfo: { systemUUID: string } }).nodeInfo.systemUUID }
      : {}),
    member: MEMBER_LABELS.some((label) => node.metadata.labels?.[label] !== undefined),
  }));
  return { vms, nodes };
}

/** Each host's turn from its part of the lab plan: a reboot, or the lab VMs restarted. */
export function hostTurns(
  parts: readonly HostPart[],
  vmChanges: readonly { vmid: number; steps: readonly Step[] }[],
): { node: string; reboots: boolean; restarts: number[] }[] {
  // Indexed once: a fleet has thousands of VM changes, each looked up per VM.
  const changesOf = Map.groupBy(vmChanges, (c) => c.vmid);
  return parts.map((part) => {
    const reboots = disturbancesOf(part.host?.steps ?? []).has('host-reboot');
    const restarts = part.vmids.filter((vmid) => {
      const steps = [
        ...(changesOf.get(vmid) ?? []).flatMap((c) => c.steps),
        ...part.guests.filter((g) => g.vm.vmid === vmid).flatMap(disturbingSteps),
      ];
      const kinds = disturbancesOf(steps);
      return kinds.has('vm-restart') || kinds.has('guest-reboot');
    });
    return { node: part.node, reboots, restarts };
  });
}

export function planRollout(
  lab: Lab,
  read: RolloutRead,
  turns: readonly { node: string; reboots: boolean; restarts: number[] }[],
  options: {
    allowApiOutage?: boolean;
    parallel?: number;
    alone?: ReadonlySet<string>;
    talosctl?: boolean;
  } = {},
): RolloutPlan {
  const byUuid = nodesByUuid(read.nodes);
  // Every host keeps its turn (one that stops no VM too), so the waves keep the lab's order.
  const disruptions = turns.map((t) => disruptionOf({ ...t, vms: read.vms.get(t.node) ?? [] }, byUuid));
  const configured = lab.rollout.maxUnavailable as Budget | undefined;
  const clusterNodes = read.nodes.length;
  const budget = budgetInNodes(configured, clusterNodes, disruptions);
  const budgetFrom =
    configured === undefined
      ? `${budget} (the default: the most nodes one host's turn takes down)`
      : typeof configured === 'string'
        ? `${configured} = ${budget} of ${clusterNodes} nodes`
        : String(configured);
  const members = read.nodes.filter((n) => n.member).map((n) => n.name);
  const schedule = scheduleRollout(disruptions, {
    budget,
    budgetFrom,
    clusterNodes,
    members: members.length,
    allowApiOutage: options.allowApiOutage === true,
    alone: options.alone ?? new Set(),
    maxHosts: options.parallel ?? 1,
  });
  return {
    budget,
    budgetFrom,
    clusterNodes,
    members,
    tolerance: schedule.tolerance,
    disruptions,
    waves: schedule.waves,
    refusals: schedule.refusals,
    signals: quorumSignals(lab, members, options.talosctl === true),
  };
}

/** The host part of an address: `ssh://root@10.0.0.5:22`, `root@pve1`, `https://pve1:8006/` → `10.0.0.5`, `pve1`. */
export function hostOfAddress(address: string): string {
  const url = /^[a-z]+:\/\//i.test(address) ? address : `ssh://${address}`;
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    // expected: TypeError from URL — not an address; the text itself is compared
    return address.toLowerCase();
  }
}

/**
 * Hosts that roll with no other host in flight: the one serving proxmox.url (its API is the
 * rollout's own), and the one carrying the VM the kubeconfig's API server runs in.
 */
export function servingHosts(lab: Lab, kubeTarget: string): Set<string> {
  const proxmox = hostOfAddress(lab.proxmox.url);
  const api = hostOfAddress(kubeTarget);
  const alone = new Set<string>();
  for (const host of lab.hosts)
    if (host.node.toLowerCase() === proxmox || (host.ssh && hostOfAddress(host.ssh) === proxmox))
      alone.add(host.node);
  for (const vm of lab.vms) {
    const guest = 'guest' in vm && typeof vm.guest === 'string' ? hostOfAddress(vm.guest) : undefined;
    const talos = 'talos' in vm ? vm.talos?.node?.toLowerCase() : undefined;
    if (guest === api || talos === api || vm.kubernetesNode?.toLowerCase() === api) alone.add(vm.host);
  }
  return alone;
}

/** The rollout as a plan section: the budget, quorum and waves as checks; refusals fail. */
export function rolloutSection(r: RolloutPlan): {
  layer: 'rollout';
  title: string;
  checks: Check[];
  steps: [];
  refused?: string;
} {
  // A budget refused as a whole (0, or more than the cluster has) is said once, as the refusal.
  const budgetRefused = r.refusals.some((refusal) => refusal.host === undefined);
  const checks: Check[] = [
    ...(budgetRefused
      ? []
      : [
          {
            id: 'rollout.budget',
            status: 'pass' as const,
            evidence: `maxUnavailable ${r.budgetFrom}: at most ${r.budget} Kubernetes node${r.budget === 1 ? '' : 's'} down at once (${r.clusterNodes} in the cluster)`,
          },
        ]),
    {
      id: 'rollout.quorum',
      status: 'pass',
      evidence:
        r.members.length > 0
          ? `${r.members.length} etcd member${r.members.length === 1 ? '' : 's'} (${r.members.join(', ')}): at most ${r.tolerance} down at once; health from ${r.signals.join(' and ')}`
          : r.signals.join('; '),
    },
    ...r.refusals.map(
      (refusal): Check => ({
        id: `rollout${refusal.host ? `.${refusal.host}` : ''}.turn`,
        status: 'fail',
        evidence: refusal.reason,
        fix: refusal.fix,
      }),
    ),
  ];
  if (r.refusals.length === 0 && r.waves.length > 0)
    checks.push({
      id: 'rollout.waves',
      status: 'pass',
      // Every VM a turn stops is named, the lab's or not, with the nodes that go down.
      evidence: r.waves
        .map((wave, i) => {
          const turns = r.disruptions.filter((d) => wave.includes(d.node));
          const hosts = turns.map((d) =>
            d.vms.length === 0
              ? `${d.node} (no VM stops)`
              : `${d.node} (VM${d.vms.length === 1 ? '' : 's'} ${d.vms.join(', ')}${d.nodes.length > 0 ? `: ${d.nodes.join(', ')} down` : ''})`,
          );
          return `${i + 1}. ${hosts.join(' + ')}`;
        })
        .join('; '),
    });
  const refused = r.refusals[0];
  return {
    layer: 'rollout',
    title: 'rollout',
    checks,
    steps: [],
    ...(refused ? { refused: refused.reason } : {}),
  };
}

/** What quorum health is judged by, for the plan to name. */
function quorumSignals(lab: Lab, members: readonly string[], talosctl: boolean): string[] {
  if (members.length === 0)
    return ['no etcd member labelled (node-role.kubernetes.io/control-plane or …/etcd): quorum not judged'];
  const talos = lab.vms.flatMap((vm) =>
    vm.os === 'talos' && vm.kubernetesNode && members.includes(vm.kubernetesNode) ? [vm.kubernetesNode] : [],
  );
  return [
    `the Ready condition of ${members.join(', ')}`,
    'the etcd check of GET /readyz?verbose',
    ...(talos.length === 0
      ? []
      : [
          talosctl
            ? `talosctl etcd status of ${talos.join(', ')}`
            : `not talosctl etcd status of ${talos.join(', ')} (talosctl is not installed here)`,
        ]),
  ];
}
