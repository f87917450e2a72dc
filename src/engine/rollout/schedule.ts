// The order hosts take their turns in: waves run one after another, the hosts of a wave
// side by side. A wave never takes more Kubernetes nodes down than the budget nor more etcd
// members than quorum tolerates, and a host that serves the Proxmox API or the Kubernetes
// API goes alone. What cannot fit any wave is refused at plan time, in one line naming the
// host, its nodes and what would let it roll. Pure; the engine and the benchmark share it.

import { type HostDisruption, quorumTolerance } from './budget.ts';

export interface RolloutConstraints {
  /** Nodes that may be down at once (budget.ts budgetInNodes). */
  budget: number;
  /** How the budget was set, for the plan: `2 (the default: the most nodes on one host)`. */
  budgetFrom: string;
  clusterNodes: number;
  /** etcd members in the cluster (control-plane or etcd role). */
  members: number;
  /** A cluster whose only etcd member is on a host may lose its API while that host reboots. */
  allowApiOutage: boolean;
  /** Hosts that roll with no other host in flight (they serve proxmox.url or the kubeconfig's API). */
  alone: ReadonlySet<string>;
  /** --parallel: hosts side by side at most. */
  maxHosts: number;
}

export interface RolloutRefusal {
  /** The host it names; absent for the lab's budget itself. */
  host?: string;
  reason: string;
  fix: string;
}

export interface RolloutSchedule {
  waves: string[][];
  refusals: RolloutRefusal[];
  /** etcd members that may be down at once. */
  tolerance: number;
}

function budgetRefusals(c: RolloutConstraints): RolloutRefusal[] {
  if (!Number.isInteger(c.budget) || c.budget < 1)
    return [
      {
        reason: `maxUnavailable ${c.budgetFrom} lets no node go down, so no host can take its turn`,
        fix: 'set rollout.maxUnavailable to 1 or more (or leave it out: the most nodes on one host)',
      },
    ];
  if (c.budget > c.clusterNodes)
    return [
      {
        reason: `maxUnavailable ${c.budgetFrom} is more than the cluster's ${c.clusterNodes} node${c.clusterNodes === 1 ? '' : 's'}`,
        fix: `set rollout.maxUnavailable to at most ${c.clusterNodes} (a count, or a percentage of the nodes)`,
      },
    ];
  return [];
}

function hostRefusal(
  d: HostDisruption,
  c: RolloutConstraints,
  tolerance: number,
): RolloutRefusal | undefined {
  if (d.nodes.length > c.budget)
    return {
      host: d.node,
      reason: `host ${d.node} takes ${d.nodes.length} nodes down at once (${d.nodes.join(', ')}), more than maxUnavailable ${c.budgetFrom}`,
      fix: `set rollout.maxUnavailable to ${d.nodes.length} or more, or move a node VM off ${d.node}`,
    };
  if (d.members.length <= tolerance) return undefined;
  if (c.members === 1 && c.allowApiOutage) return undefined;
  if (c.members === 1)
    return {
      host: d.node,
      reason: `host ${d.node} carries the cluster's only control-plane node (${d.members[0]}): its turn stops the Kubernetes API`,
      fix: 'add --allow-api-outage to accept that, or add control-plane nodes on other hosts first',
    };
  return {
    host: d.node,
    reason: `host ${d.node} carries ${d.members.length} of the cluster's ${c.members} etcd members (${d.members.join(', ')}): its turn would lose quorum, which tolerates ${tolerance} down`,
    fix: `move control-plane node VMs off ${d.node} so that it carries at most ${tolerance}`,
  };
}

/** Waves in host order, first fit: a host joins the first wave it fits, alone-hosts get their own. */
export function scheduleRollout(
  disruptions: readonly HostDisruption[],
  c: RolloutConstraints,
): RolloutSchedule {
  // No member labelled: nothing for quorum to judge (the plan says so).
  const tolerance =
    c.members === 0
      ? Number.POSITIVE_INFINITY
      : c.members === 1 && c.allowApiOutage
        ? 1
        : quorumTolerance(c.members);
  const lab = budgetRefusals(c);
  if (lab.length > 0) return { waves: [], refusals: lab, tolerance };
  const refusals = disruptions.flatMap((d) => hostRefusal(d, c, tolerance) ?? []);
  if (refusals.length > 0) return { waves: [], refusals, tolerance };
  const waves: { hosts: HostDisruption[]; nodes: number; members: number; alone: boolean }[] = [];
  for (const d of disruptions) {
    const alone = c.alone.has(d.node);
    const wave = alone
      ? undefined
      : waves.find(
          (w) =>
            !w.alone &&
            w.hosts.length < c.maxHosts &&
            w.nodes + d.nodes.length <= c.budget &&
            w.members + d.members.length <= tolerance,
        );
    if (wave) {
      wave.hosts.push(d);
      wave.nodes += d.nodes.length;
      wave.members += d.members.length;
    } else waves.push({ hosts: [d], nodes: d.nodes.length, members: d.members.length, alone });
  }
  return { waves: waves.map((w) => w.hosts.map((h) => h.node)), refusals: [], tolerance };
}

/** The fewest waves any schedule needs: the nodes over the budget, and the alone-hosts. */
export function fewestWaves(disruptions: readonly HostDisruption[], c: RolloutConstraints): number {
  const shared = disruptions.filter((d) => !c.alone.has(d.node));
  const nodes = shared.reduce((sum, d) => sum + d.nodes.length, 0);
  const byNodes = Math.ceil(nodes / c.budget);
  const byHosts = Math.ceil(shared.length / c.maxHosts);
  return Math.max(byNodes, byHosts, shared.length > 0 ? 1 : 0) + (disruptions.length - shared.length);
}
