// How many Kubernetes nodes a rollout may take down at once, and what each host's turn takes
// down: every VM a host reboot stops (the lab's and any other), mapped to Kubernetes nodes by
// the VM's SMBIOS uuid (Proxmox `smbios1: uuid=…`) = the node's status.nodeInfo.systemUUID.
// Pure: the inputs are read elsewhere, so the plan and the benchmark share one answer.

/** A VM on a host, as the rollout sees it. */
export interface RolloutVm {
  vmid: number;
  name?: string;
  running: boolean;
  /** The `uuid` of the VM's `smbios1`, when it has one. */
  uuid?: string;
  /** The lab file names it. */
  lab: boolean;
}

/** A Kubernetes node, as the rollout sees it. */
export interface RolloutNode {
  name: string;
  /** status.nodeInfo.systemUUID. */
  systemUUID?: string;
  /** Counts toward etcd quorum (the control-plane or etcd role label). */
  member: boolean;
}

/** A host's turn: whether it reboots, and the lab VMs it restarts otherwise. */
export interface RolloutHost {
  node: string;
  vms: RolloutVm[];
  /** The host's own plan reboots it: every running VM on it stops. */
  reboots: boolean;
  /** Lab VMs restarted (or their guests rebooted) without a host reboot. */
  restarts: number[];
}

/** What one host's turn takes down. */
export interface HostDisruption {
  node: string;
  /** Running VMs that stop, by vmid (a reboot: all; else the lab's restarts). */
  vms: number[];
  /** The Kubernetes nodes among them. */
  nodes: string[];
  /** The etcd members among those nodes. */
  members: string[];
}

/**
 * The node whose systemUUID is the VM's SMBIOS uuid. Linux prints product_uuid in lower case
 * and a VM's uuid may be written in either, so the comparison ignores case.
 */
export function nodeOfVm(
  vm: RolloutVm,
  nodes: readonly RolloutNode[] | NodesByUuid,
): RolloutNode | undefined {
  const uuid = vm.uuid?.toLowerCase();
  if (!uuid) return undefined;
  if (Array.isArray(nodes))
    return (nodes as readonly RolloutNode[]).find((n) => n.systemUUID?.toLowerCase() === uuid);
  return (nodes as NodesByUuid).get(uuid);
}

/** Nodes by lower-cased systemUUID: a fleet maps thousands of VMs, each looked up once. */
export type NodesByUuid = ReadonlyMap<string, RolloutNode>;

export function nodesByUuid(nodes: readonly RolloutNode[]): NodesByUuid {
  return new Map(nodes.flatMap((n) => (n.systemUUID ? [[n.systemUUID.toLowerCase(), n] as const] : [])));
}

export function disruptionOf(host: RolloutHost, nodes: readonly RolloutNode[] | NodesByUuid): HostDisruption {
  const restarts = new Set(host.restarts);
  const stopped = host.vms
    .filter((vm) => vm.running && (host.reboots || restarts.has(vm.vmid)))
    .sort((a, b) => a.vmid - b.vmid);
  const hit = stopped.flatMap((vm) => {
    const node = nodeOfVm(vm, nodes);
    return node ? [node] : [];
  });
  return {
    node: host.node,
    vms: stopped.map((vm) => vm.vmid),
    nodes: hit.map((n) => n.name),
    members: hit.filter((n) => n.member).map((n) => n.name),
  };
}

/** `maxUnavailable` as the lab file gives it: a count, or a percentage of the cluster's nodes. */
export type Budget = number | `${number}%`;

/**
 * The budget in nodes. A percentage counts the cluster's nodes and rounds up, as a
 * DaemonSet's maxUnavailable does (kubernetes/api apps/v1/types.go RollingUpdateDaemonSet
 * MaxUnavailable @v0.34.1: "Absolute number is calculated from percentage by rounding up").
 * Unset: the most nodes any one host carries, so that every host can take its turn.
 */
export function budgetInNodes(
  budget: Budget | undefined,
  clusterNodes: number,
  disruptions: readonly HostDisruption[],
): number {
  if (budget === undefined) return Math.max(1, ...disruptions.map((d) => d.nodes.length));
  if (typeof budget === 'number') return budget;
  return Math.ceil((Number.parseFloat(budget) / 100) * clusterNodes);
}

/** Most etcd members down at once that keep quorum: (members − 1) / 2, rounded down. */
export const quorumTolerance = (members: number): number => Math.floor((members - 1) / 2);
