// One plan across the layers. Every target is gathered read-only, in parallel with a
// bound; each layer plans its part; the result is grouped by Proxmox host (host, its
// VMs, their guests) plus the lab-wide mapping and cluster parts, each step saying what
// it disturbs. The engine applies it in the rolling order (apply.ts).

import { createHash } from 'node:crypto';
import type { HostAccess } from '../access/host.ts';
import { drainPreflight, gatherDrainFacts } from '../cluster/drain-preflight.ts';
import { clusterLayer } from '../cluster/layer.ts';
import type { ClusterPlan, GpuNode } from '../cluster/plan.ts';
import {
  desiredVmsOf,
  gpuNodesOf,
  type HostWishes,
  hostWishesOf,
  identityOf,
  plannedVfs,
  type SriovHost,
} from '../config/derived.ts';
import type { Lab, NodeVm } from '../config/lab.ts';
import { bounded } from '../core/bounded.ts';
import { EXIT, type ExitCode, TargetError, UsageError, unlessUnreachable } from '../core/errors.ts';
import { type Check, disturbancesOf, type Step } from '../core/model.ts';
import { WaitWatch } from '../core/waits.ts';
import type { HostGpu } from '../guest/attachment.ts';
import type { GuestAttachment, GuestPlan } from '../guest/provider.ts';
import { guestLayer } from '../guest/providers.ts';
import { hostLayer } from '../host/layer.ts';
import type { HostPlan } from '../host/plan.ts';
import { hostVerdict } from '../host/verdict.ts';
import { MAX_IGPU_VFS } from '../knowledge/igpu-platforms.ts';
import { mappingPrivileges } from '../mapping/apply.ts';
import { mappingLayer } from '../mapping/layer.ts';
import type { MappingPlan } from '../mapping/plan.ts';
import { gatherVfPoolFacts, planVfPool } from '../mapping/vf-pool.ts';
import { vmPlanPrivileges } from '../vm/apply.ts';
import { vmLayer } from '../vm/layer.ts';
import type { VmPlan } from '../vm/plan.ts';
import { guestEnvironment, type LabConnections } from './connections.ts';
import { hostDrains } from './disturbances.ts';
import { attachmentsOf, gpuDriverOf, hostGpuOf } from './guest-attachment.ts';
import { gatherHa, type HaTurn, haPrivileges, planHa } from './rollout/ha.ts';
import {
  gatherRollout,
  hostTurns,
  planRollout,
  type RolloutPlan,
  rolloutSection,
  servingHosts,
} from './rollout/plan.ts';

export interface GuestPart {
  vm: NodeVm;
  /** Absent when the lab file gives no way to reach the guest (its guest layer is not managed). */
  plan?: GuestPlan;
  /** Why the guest could not be read (its SSH, talosctl or Kubernetes node), in one line. */
  unreachable?: Unreachable;
}

/**
 * The steps of a guest change that disturb anything while apply runs: none for a change
 * left to the user (talosctl absent: written to files), which reboots and drains nothing now.
 */
export function disturbingSteps(guest: GuestPart): Step[] {
  return guest.plan?.manual ? [] : (guest.plan?.steps ?? []);
}

export interface HostPart {
  node: string;
  /** Absent when the lab file gives no SSH address for the host (its host layer is not managed). */
  host?: HostPlan;
  /** Why the host's SSH could not be reached, in one line: its host layer is not planned. */
  unreachable?: Unreachable;
  vmids: number[];
  guests: GuestPart[];
  /** Proxmox HA during this host's turn (a reboot): what HA would do, what is set and put back. */
  ha?: HaTurn;
}

/**
 * A part of the lab that could not be read: its chains are marked, the rest is planned.
 * `node` is the Proxmox host whose chains it is (none for the Kubernetes API, lab-wide).
 */
export interface Unreachable {
  part: 'host' | 'guest' | 'cluster';
  node?: string;
  vmid?: number;
  /** What could not be read and why (the connection's own one-line error). */
  reason: string;
  fix: string;
}

export interface LabPlan {
  /** The Proxmox privileges the changes need and the token lacks: named before anything changes. */
  privileges: Check[];
  mapping: MappingPlan;
  /** The VF pool mapping (sriov.mapping) of the SR-IOV hosts; absent when the lab has none. */
  vfPool?: MappingPlan;
  /** The SR-IOV hosts: the PF and the VFs each host plan makes. */
  sriovHosts: SriovHost[];
  vms: VmPlan;
  hosts: HostPart[];
  cluster: ClusterPlan;
  gpuNodes: GpuNode[];
  /** Every part that could not be read, host by host, then the cluster. */
  unreachable: Unreachable[];
  /** Hosts left out with --skip-host: their VMs, guests and drains are in no part of this plan. */
  skippedHosts: string[];
  /** How apply rolls across the hosts (budget, quorum, waves); absent without the Kubernetes API. */
  rollout?: RolloutPlan;
  /**
   * The drain pre-flight (cluster/drain-preflight.ts): one check per host whose turn the engine
   * drains nodes for, `rollout.<host>.drain`; a failing one refuses the plan.
   */
  drains: Check[];
}

export interface PlanOptions {
  changeMachine?: boolean;
  resetEfiKeys?: boolean;
  /** How many targets are read at once. */
  parallel?: number;
  /** Proxmox hosts left out (--skip-host): neither read nor planned, with their VMs and guests. */
  skipHosts?: readonly string[];
  /** Hosts apply runs side by side at most (--parallel), and whether the API may go down. */
  rollout?: { parallel?: number; allowApiOutage?: boolean };
}

/** The lab without the hosts named by --skip-host, and without their VMs; a name it lacks is refused. */
export function labWithout(lab: Lab, skip: readonly string[] = []): Lab {
  if (skip.length === 0) return lab;
  for (const node of skip)
    if (!lab.hosts.some((h) => h.node === node))
      throw new UsageError(`--skip-host ${node}: no such host in the lab file`, {
        fix: `hosts are: ${lab.hosts.map((h) => h.node).join(', ')}`,
      });
  return {
    ...lab,
    hosts: lab.hosts.filter((h) => !skip.includes(h.node)),
    vms: lab.vms.filter((vm) => !skip.includes(vm.host)),
  };
}

function unreachableOf(
  error: TargetError,
  where: Omit<Unreachable, 'reason' | 'fix'>,
  fix: string,
): Unreachable {
  return { ...where, reason: error.oneLine(), fix };
}

const skipFix = (node: string) =>
  `bring it back and plan again, or leave its chains out: igpu-split apply --skip-host ${node}`;

async function withAccess<T>(
  open: () => Promise<HostAccess>,
  work: (access: HostAccess) => Promise<T>,
): Promise<T> {
  const access = await open();
  try {
    return await work(access);
  } finally {
    await access.close();
  }
}

/**
 * A guest's plan through its OS's provider; the connection it opened is closed after. A
 * guest that cannot be reached (or read) marks its own chain.
 */
async function planGuest(
  vm: NodeVm,
  connections: LabConnections,
  attachment: GuestAttachment | undefined,
): Promise<GuestPart> {
  const layer = guestLayer(vm, {
    ...guestEnvironment(connections),
    ...(attachment ? { attachment: () => attachment } : {}),
  });
  if (!layer) return { vm };
  try {
    const read = await unlessUnreachable(() => layer.gather());
    if (!(read instanceof TargetError)) return { vm, plan: layer.plan(read) };
    return {
      vm,
      unreachable: unreachableOf(read, { part: 'guest', node: vm.host, vmid: vm.vmid }, skipFix(vm.host)),
    };
  } finally {
    await layer.close();
  }
}

/**
 * The SR-IOV hosts as the mapping and VM layers take them: from each host plan that planned
 * SR-IOV (its PF and VF count); a host without SSH whose lab entry says `mode: sriov` gets
 * the iGPU's usual address and the count `vfs` gives (VMs on it, at most 7).
 */
function sriovHostsOf(
  lab: Lab,
  hosts: Lab['hosts'],
  plans: (Awaited<ReturnType<typeof planHost>> | undefined)[],
): SriovHost[] {
  return hosts.flatMap((h, i) => {
    const read = plans[i];
    const sriov = read && 'plan' in read ? read.plan.sriov : undefined;
    if (sriov) return [{ node: h.node, pfBdf: sriov.pfBdf, vfs: sriov.vfs }];
    if (read || h.mode !== 'sriov') return [];
    const vms = lab.vms.filter((vm) => vm.host === h.node).length;
    return [{ node: h.node, pfBdf: '0000:00:02.0', vfs: plannedVfs(h.vfs, vms, MAX_IGPU_VFS).vfs }];
  });
}

/** A host's plan and GPU facts, or why its SSH could not be reached. */
async function planHost(node: string, connections: LabConnections, lab: Lab, wishes: HostWishes) {
  const entry = lab.hosts.find((h) => h.node === node);
  const read = await unlessUnreachable(() =>
    withAccess(
      () => connections.host(node),
      async (access) => {
        const layer = hostLayer(access, { plan: { wishes } });
        const facts = await layer.gather();
        return { plan: layer.plan(facts), gpu: hostVerdict(facts).gpu, attached: hostGpuOf(facts, entry) };
      },
    ),
  );
  return read instanceof TargetError
    ? { unreachable: unreachableOf(read, { part: 'host', node }, skipFix(node)) }
    : read;
}

/**
 * Every layer gathers (read-only, in parallel with a bound) and plans through the one
 * layer contract; what one layer found that another plans with (the mapping to be made,
 * a host's aperture) is handed over as facts.
 *
 * A host, guest or Kubernetes API that cannot be reached marks its own chains
 * (`unreachable`) and the rest is planned. The Proxmox API is the exception: the mapping,
 * every VM and the token's privileges are read through it, so without it nothing can be
 * planned and its error is thrown.
 */
export async function planLab(
  fullLab: Lab,
  connections: LabConnections,
  options: PlanOptions = {},
): Promise<LabPlan> {
  const skippedHosts = [...new Set(options.skipHosts ?? [])];
  const lab = labWithout(fullLab, skippedHosts);
  const limit = options.parallel ?? 8;
  const gpuNodes = gpuNodesOf(lab);
  const usedHosts = lab.hosts.filter((h) => lab.vms.some((vm) => vm.host === h.node) || h.ssh);
  const mappingOf = mappingLayer(connections.proxmox, lab.mapping, [
    ...new Set(lab.vms.map((vm) => vm.host)),
  ]);
  const vmOptions = {
    mapping: lab.mapping,
    identity: identityOf(lab.proxmox.token),
    changeMachine: options.changeMachine,
    resetEfiKeys: options.resetEfiKeys,
  };
  const vmsOf = vmLayer(connections.proxmox, desiredVmsOf(lab), vmOptions);
  const clusterOf = clusterLayer(connections.kube, lab.kubernetes, gpuNodes);
  // A gather that takes long says what it still waits for ("gathering: still waiting for host pve2
  // and 2 more"). It is no server of its own and has no limit of its own: each read under it is
  // bounded by the connect and request limits, and a slow one says so with them.
  const gathering = new WaitWatch('gathering', undefined, false);
  const hostReads = bounded(usedHosts, limit, async (h) =>
    h.ssh
      ? gathering.track(`host ${h.node}`, planHost(h.node, connections, lab, hostWishesOf(lab, h.node)))
      : undefined,
  );
  // A guest is planned for what its host gives it (an mdev or an SR-IOV VF), so it is read
  // once its host is: the host's route decides the guest's driver.
  const attachments = hostReads.then((reads) => {
    const read = new Map<string, HostGpu>();
    usedHosts.forEach((h, i) => {
      const one = reads[i];
      if (one && 'attached' in one) read.set(h.node, one.attached);
    });
    return attachmentsOf(lab, read);
  });
  const [hostPlans, mappingFacts, vmInputs, guests, clusterRead, attachedTo] = await Promise.all([
    hostReads,
    gathering.track(`mapping ${lab.mapping}`, mappingOf.gather()),
    gathering.track('the VM configs', vmsOf.gather()),
    attachments.then((attached) =>
      bounded(lab.vms, limit, (vm) =>
        gathering.track(`guest of VM ${vm.vmid}`, planGuest(vm, connections, attached.get(vm.vmid))),
      ),
    ),
    unlessUnreachable(() => gathering.track('the cluster', clusterOf.gather())),
    attachments,
  ]);
  const sriovHosts = sriovHostsOf(lab, usedHosts, hostPlans);
  const sriovNodes = new Set(sriovHosts.map((h) => h.node));
  // The GVT-g mapping keeps the GVT-g hosts; the SR-IOV hosts go through the VF pool.
  const mapping = mappingOf.plan({
    ...mappingFacts,
    nodes: mappingFacts.nodes.filter((n) => !sriovNodes.has(n.node)),
  });
  const vfPool =
    sriovHosts.length > 0
      ? planVfPool(
          await gathering.track(
            `mapping ${lab.sriov.mapping}`,
            gatherVfPoolFacts(connections.proxmox, lab.sriov.mapping, sriovHosts),
          ),
        )
      : undefined;
  const vms = vmLayer(connections.proxmox, desiredVmsOf(lab, sriovNodes), {
    ...vmOptions,
    vfPool: lab.sriov.mapping,
    vfHosts: Object.fromEntries(sriovHosts.map((h) => [h.node, h])),
  }).plan({
    ...vmInputs,
    mappingPlanned: mapping.steps.length > 0,
    // What the host layer read lets a refusal say which BIOS aperture would fit.
    hostHints: Object.fromEntries(
      usedHosts.map((h, i) => {
        const read = hostPlans[i];
        const gpu = read && 'gpu' in read ? read.gpu : undefined;
        return [
          h.node,
          { apertureMiB: gpu?.apertureMiB ?? undefined, graphicsVer: gpu?.graphicsVer ?? undefined },
        ];
      }),
    ),
  });
  const vmsOn = Map.groupBy(lab.vms, (vm) => vm.host);
  const guestsOn = Map.groupBy(guests, (g) => g.vm.host);
  const parts: HostPart[] = usedHosts.map((h, i) => {
    const read = hostPlans[i];
    return {
      node: h.node,
      ...(read && 'plan' in read ? { host: read.plan } : {}),
      ...(read && 'unreachable' in read ? { unreachable: read.unreachable } : {}),
      vmids: (vmsOn.get(h.node) ?? []).map((vm) => vm.vmid),
      guests: guestsOn.get(h.node) ?? [],
    };
  });
  const hosts = await withHa(parts, connections);
  const lacking = await connections.proxmox.privilegeCheck([
    ...mappingPrivileges(mapping),
    ...(vfPool ? mappingPrivileges(vfPool) : []),
    ...vmPlanPrivileges(vms),
    ...haPrivileges(hosts.map((h) => h.ha)),
  ]);
  const privileges: Check[] = lacking ? [lacking] : [];
  // Without the Kubernetes API no drain can be made: apply refuses, whatever is skipped.
  const clusterDown =
    clusterRead instanceof TargetError
      ? unreachableOf(
          clusterRead,
          { part: 'cluster' },
          'check the kubeconfig’s API server answers (kubectl get nodes), then plan again',
        )
      : undefined;
  const cluster: ClusterPlan =
    clusterRead instanceof TargetError ? { checks: [], steps: [] } : clusterOf.plan(clusterRead);
  const unreachable = [
    ...hosts.flatMap((h) => [
      ...(h.unreachable ? [h.unreachable] : []),
      ...h.guests.flatMap((g) => (g.unreachable ? [g.unreachable] : [])),
    ]),
    ...(clusterDown ? [clusterDown] : []),
  ];
  const rollout = clusterDown
    ? undefined
    : await rolloutOf(lab, connections, hosts, vmInputs.vms.vms, vms.changes, limit, options.rollout);
  // The resource each node offers follows the driver its guest binds (gpu.intel.com/i915 or /xe).
  const drivenGpuNodes = gpuNodesOf(lab, (vm) => gpuDriverOf(vm, attachedTo.get(vm.vmid)));
  const plan: LabPlan = {
    privileges,
    mapping,
    vfPool,
    sriovHosts,
    vms,
    hosts,
    cluster,
    gpuNodes: drivenGpuNodes,
    unreachable,
    skippedHosts,
    ...(rollout ? { rollout } : {}),
    drains: [],
  };
  if (clusterDown) return plan;
  return { ...plan, drains: await drainChecks(lab, plan, connections, gathering) };
}

/**
 * The drain pre-flight: the nodes the engine drains for each host's turn, in rollout order,
 * against the pods and PodDisruptionBudgets read once. A read that fails is one warning: the
 * drains still honour the budgets live.
 */
async function drainChecks(
  lab: Lab,
  plan: LabPlan,
  connections: LabConnections,
  gathering: WaitWatch,
): Promise<Check[]> {
  const turns = plan.hosts.map((part) => ({ host: part.node, nodes: hostDrains(lab, plan, part).engine }));
  if (!turns.some((t) => t.nodes.length > 0)) return [];
  const facts = await unlessUnreachable(() =>
    gathering.track('the pods and disruption budgets', gatherDrainFacts(connections.kube, turns)),
  );
  if (facts instanceof TargetError)
    return [
      {
        id: 'rollout.drain',
        status: 'warn',
        evidence: `the pods and PodDisruptionBudgets could not be read, so no drain was checked before apply: ${facts.oneLine()}`,
        fix: 'let the kubeconfig list pods and poddisruptionbudgets in every namespace (the drains still honour the budgets)',
      },
    ];
  return drainPreflight(turns, facts);
}

/** Each host whose turn reboots it, with what Proxmox HA does to its lab VMs then (rollout/ha.ts). */
async function withHa(parts: HostPart[], connections: LabConnections): Promise<HostPart[]> {
  const reboots = (part: HostPart) => disturbancesOf(part.host?.steps ?? []).has('host-reboot');
  const rebooting = parts.filter(reboots);
  if (rebooting.length === 0) return parts;
  const read = await gatherHa(
    connections.proxmox,
    rebooting.flatMap((p) => p.vmids),
  );
  return parts.map((part) => {
    const ha = planHa(
      read,
      { node: part.node, reboots: reboots(part), vmids: part.vmids },
      connections.proxmox.identity,
    );
    return ha.checks.length > 0 ? { ...part, ha } : part;
  });
}

/** The rollout's part of the plan: every VM of the lab's hosts, every Kubernetes node, the waves. */
async function rolloutOf(
  lab: Lab,
  connections: LabConnections,
  hosts: readonly HostPart[],
  labVms: readonly { vmid: number; config: { values: Record<string, unknown> } }[],
  vmChanges: readonly { vmid: number; steps: readonly Step[] }[],
  limit: number,
  options: PlanOptions['rollout'] = {},
): Promise<RolloutPlan | undefined> {
  const known = new Map(labVms.map((vm) => [vm.vmid, vm.config.values]));
  const read = await unlessUnreachable(() =>
    gatherRollout(
      lab,
      connections,
      hosts.map((h) => h.node),
      known,
      limit,
    ),
  );
  if (read instanceof TargetError) return undefined;
  return planRollout(lab, read, hostTurns(hosts, vmChanges), {
    ...options,
    alone: servingHosts(lab, connections.kube.target),
    talosctl: connections.talosctl !== undefined,
  });
}

/**
 * Why apply may not go on while parts are unreachable (and not skipped), or undefined:
 * one line naming each, and --skip-host for the hosts.
 */
export function unreachableRefusal(plan: LabPlan): TargetError | undefined {
  if (plan.unreachable.length === 0) return undefined;
  const hosts = [...new Set(plan.unreachable.flatMap((u) => (u.node ? [u.node] : [])))];
  const cluster = plan.unreachable.some((u) => u.part === 'cluster');
  const what = plan.unreachable.map((u) => u.reason).join('; ');
  return new TargetError(`some of the lab cannot be reached, so nothing was changed: ${what}`, {
    fix: [
      ...(hosts.length > 0
        ? [
            `bring ${hosts.join(', ')} back, or leave ${hosts.length === 1 ? 'its' : 'their'} chains out: igpu-split apply ${hosts.map((h) => `--skip-host ${h}`).join(' ')}`,
          ]
        : []),
      ...(cluster ? ['the Kubernetes API must answer for any apply (drains, labels, the plugin)'] : []),
    ].join('; '),
    nothingChanged: true,
  });
}

/** A flat view for printing and JSON: each target with its checks and steps, host by host. */
export interface PlanSection {
  layer: 'token' | 'mapping' | 'host' | 'vm' | 'guest' | 'cluster' | 'rollout';
  title: string;
  checks: Check[];
  steps: Step[];
  refused?: string;
  /** This part could not be read, so it is not planned: why, and what to do. */
  unreachable?: { reason: string; fix: string };
}

const unreachableView = (u: Unreachable | undefined) =>
  u ? { unreachable: { reason: u.reason, fix: u.fix } } : {};

export function planSections(plan: LabPlan): PlanSection[] {
  const sections: PlanSection[] = [];
  const lacking = plan.privileges.find((c) => c.status === 'fail');
  if (lacking)
    sections.push({
      layer: 'token',
      title: 'Proxmox token',
      checks: plan.privileges,
      steps: [],
      refused: lacking.evidence,
    });
  sections.push({
    layer: 'mapping',
    title: `mapping ${plan.mapping.name}`,
    checks: plan.mapping.checks,
    steps: plan.mapping.steps,
  });
  if (plan.vfPool)
    sections.push({
      layer: 'mapping',
      title: `mapping ${plan.vfPool.name} (virtual functions)`,
      checks: plan.vfPool.checks,
      steps: plan.vfPool.steps,
      refused: plan.vfPool.refused,
    });
  // Indexed once: a fleet has thousands of VMs, each looked up per section.
  const changeOf = new Map(plan.vms.changes.map((c) => [c.vmid, c]));
  const vmChecks = new Map<string, [number, Check][]>();
  plan.vms.checks.forEach((check, at) => {
    const key = /^vm\.([^.]+)\./.exec(check.id)?.[1];
    if (key === undefined) return;
    vmChecks.set(key, [...(vmChecks.get(key) ?? []), [at, check]]);
  });
  const checksOf = (vmid: number, node: string) =>
    [
      ...(vmChecks.get(String(vmid)) ?? []),
      ...(vmChecks.get(node) ?? []).filter(([, c]) => c.id === `vm.${node}.vgpu`),
    ]
      .sort((x, y) => x[0] - y[0])
      .map(([, check]) => check);
  for (const part of plan.hosts) {
    if (part.host || part.unreachable) {
      sections.push({
        layer: 'host',
        title: `host ${part.node}`,
        checks: [...(part.host?.checks ?? []), ...(part.ha?.checks ?? [])],
        steps: [...(part.host?.steps ?? []), ...(part.ha?.steps ?? [])],
        refused: part.host?.refused ?? part.ha?.refused,
        ...unreachableView(part.unreachable),
      });
    }
    for (const vmid of part.vmids) {
      sections.push({
        layer: 'vm',
        title: `VM ${vmid} on ${part.node}`,
        checks: checksOf(vmid, part.node),
        steps: changeOf.get(vmid)?.steps ?? [],
      });
    }
    for (const guest of part.guests) {
      if (!guest.plan && !guest.unreachable) continue;
      sections.push({
        layer: 'guest',
        title: `guest of VM ${guest.vm.vmid} (${guest.vm.os}${guest.vm.kubernetesNode ? `, ${guest.vm.kubernetesNode}` : ''})`,
        checks: guest.plan?.checks ?? [],
        steps: guest.plan?.steps ?? [],
        refused: guest.plan?.refused,
        ...unreachableView(guest.unreachable),
      });
    }
  }
  sections.push(...budgetSections(plan));
  sections.push({
    layer: 'cluster',
    title: 'cluster',
    checks: plan.cluster.checks,
    steps: plan.cluster.steps,
    refused: plan.cluster.refused,
    ...unreachableView(plan.unreachable.find((u) => u.part === 'cluster')),
  });
  sections.push(...drainSections(plan));
  return sections;
}

/**
 * The rollout's budget, quorum and waves: shown once a host's turn takes a Kubernetes node
 * down (VMs mapped by SMBIOS uuid) or the rollout is refused; a lab whose VMs map to no node
 * has nothing to budget.
 */
function budgetSections(plan: LabPlan): PlanSection[] {
  const rollout = plan.rollout;
  const shown =
    rollout && (rollout.refusals.length > 0 || rollout.disruptions.some((d) => d.nodes.length > 0));
  return rollout && shown ? [rolloutSection(rollout)] : [];
}

/** The drain pre-flight: one check per host turn the engine drains for. */
function drainSections(plan: LabPlan): PlanSection[] {
  if (plan.drains.length === 0) return [];
  const blocked = plan.drains.find((c) => c.status === 'fail');
  return [
    {
      layer: 'rollout',
      title: 'rollout: the drains of each host’s turn',
      checks: plan.drains,
      steps: [],
      ...(blocked ? { refused: blocked.evidence } : {}),
    },
  ];
}

/** Why nothing can be applied, when some part refuses. */
export function planRefusal(plan: LabPlan): string | undefined {
  const refused = planSections(plan).find((s) => s.refused)?.refused;
  return plan.vms.refused ?? refused;
}

/** What the user was shown, as one value: two plans with the same digest read the same. */
export function planDigest(plan: LabPlan): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        sections: planSections(plan),
        refused: planRefusal(plan),
        skipped: plan.skippedHosts,
      }),
    )
    .digest('hex');
}

/**
 * The exit code `plan` ends with, once everything is printed: a refusal 1, else a part that
 * could not be read 2 (its chains are marked), else 0 (README, "Exit codes").
 */
export function planExitCode(plan: LabPlan): ExitCode {
  if (planRefusal(plan)) return EXIT.checkFailed;
  return plan.unreachable.length > 0 ? EXIT.usage : EXIT.ok;
}

export function planIsEmpty(plan: LabPlan): boolean {
  return planSections(plan).every((s) => s.steps.length === 0);
}
