// One plan across the layers. Every target is gathered read-only, in parallel with a
// bound; each layer plans its part; the result is grouped by Proxmox host (host, its
// VMs, their guests) plus the lab-wide mapping and cluster parts, each step saying what
// it disturbs. The engine applies it in the rolling order (apply.ts).

import { createHash } from 'node:crypto';
import type { HostAccess } from '../access/host.ts';
import { clusterLayer } from '../cluster/layer.ts';
import type { ClusterPlan, GpuNode } from '../cluster/plan.ts';
import { desiredVmsOf, gpuNodesOf, identityOf } from '../config/derived.ts';
import type { Lab, NodeVm } from '../config/lab.ts';
import { bounded } from '../core/bounded.ts';
import type { Check, Step } from '../core/model.ts';
import { WaitWatch } from '../core/waits.ts';
import type { GuestPlan } from '../guest/provider.ts';
import { guestLayer } from '../guest/providers.ts';
import { hostLayer } from '../host/layer.ts';
import type { HostPlan } from '../host/plan.ts';
import { hostVerdict } from '../host/verdict.ts';
import { mappingPrivileges } from '../mapping/apply.ts';
import { mappingLayer } from '../mapping/layer.ts';
import type { MappingPlan } from '../mapping/plan.ts';
import { vmPlanPrivileges } from '../vm/apply.ts';
import { vmLayer } from '../vm/layer.ts';
import type { VmPlan } from '../vm/plan.ts';
import { guestEnvironment, type LabConnections } from './connections.ts';

export interface GuestPart {
  vm: NodeVm;
  /** Absent when the lab file gives no way to reach the guest (its guest layer is not managed). */
  plan?: GuestPlan;
}

export interface HostPart {
  node: string;
  /** Absent when the lab file gives no SSH address for the host (its host layer is not managed). */
  host?: HostPlan;
  vmids: number[];
  guests: GuestPart[];
}

export interface LabPlan {
  /** The Proxmox privileges the changes need and the token lacks: named before anything changes. */
  privileges: Check[];
  mapping: MappingPlan;
  vms: VmPlan;
  hosts: HostPart[];
  cluster: ClusterPlan;
  gpuNodes: GpuNode[];
}

export interface PlanOptions {
  changeMachine?: boolean;
  resetEfiKeys?: boolean;
  /** How many targets are read at once. */
  parallel?: number;
}

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

/** A guest's plan through its OS's provider; the connection it opened is closed after. */
async function planGuest(vm: NodeVm, connections: LabConnections): Promise<GuestPart> {
  const layer = guestLayer(vm, guestEnvironment(connections));
  if (!layer) return { vm };
  try {
    return { vm, plan: layer.plan(await layer.gather()) };
  } finally {
    await layer.close();
  }
}

/**
 * Every layer gathers (read-only, in parallel with a bound) and plans through the one
 * layer contract; what one layer found that another plans with (the mapping to be made,
 * a host's aperture) is handed over as facts.
 */
export async function planLab(
  lab: Lab,
  connections: LabConnections,
  options: PlanOptions = {},
): Promise<LabPlan> {
  const limit = options.parallel ?? 8;
  const gpuNodes = gpuNodesOf(lab);
  const usedHosts = lab.hosts.filter((h) => lab.vms.some((vm) => vm.host === h.node) || h.ssh);
  const mappingOf = mappingLayer(connections.proxmox, lab.mapping, [
    ...new Set(lab.vms.map((vm) => vm.host)),
  ]);
  const vmsOf = vmLayer(connections.proxmox, desiredVmsOf(lab), {
    mapping: lab.mapping,
    identity: identityOf(lab.proxmox.token),
    changeMachine: options.changeMachine,
    resetEfiKeys: options.resetEfiKeys,
  });
  const clusterOf = clusterLayer(connections.kube, lab.kubernetes, gpuNodes);
  // A gather that takes long says what it still waits for ("gathering: still waiting for host pve2 and 2 more").
  const gathering = new WaitWatch('gathering');
  const [hostPlans, mappingFacts, vmInputs, guests, clusterFacts] = await Promise.all([
    bounded(usedHosts, limit, async (h) =>
      h.ssh
        ? gathering.track(
            `host ${h.node}`,
            withAccess(
              () => connections.host(h.node),
              async (access) => {
                const layer = hostLayer(access);
                const facts = await layer.gather();
                return { plan: layer.plan(facts), gpu: hostVerdict(facts).gpu };
              },
            ),
          )
        : undefined,
    ),
    gathering.track(`mapping ${lab.mapping}`, mappingOf.gather()),
    gathering.track('the VM configs', vmsOf.gather()),
    bounded(lab.vms, limit, (vm) => gathering.track(`guest of VM ${vm.vmid}`, planGuest(vm, connections))),
    gathering.track('the cluster', clusterOf.gather()),
  ]);
  const mapping = mappingOf.plan(mappingFacts);
  const vms = vmsOf.plan({
    ...vmInputs,
    mappingPlanned: mapping.steps.length > 0,
    // What the host layer read lets a refusal say which BIOS aperture would fit.
    hostHints: Object.fromEntries(
      usedHosts.map((h, i) => {
        const gpu = hostPlans[i]?.gpu;
        return [
          h.node,
          { apertureMiB: gpu?.apertureMiB ?? undefined, graphicsVer: gpu?.graphicsVer ?? undefined },
        ];
      }),
    ),
  });
  const lacking = await connections.proxmox.privilegeCheck([
    ...mappingPrivileges(mapping),
    ...vmPlanPrivileges(vms),
  ]);
  const privileges: Check[] = lacking ? [lacking] : [];
  const vmsOn = Map.groupBy(lab.vms, (vm) => vm.host);
  const guestsOn = Map.groupBy(guests, (g) => g.vm.host);
  const hosts: HostPart[] = usedHosts.map((h, i) => ({
    node: h.node,
    host: hostPlans[i]?.plan,
    vmids: (vmsOn.get(h.node) ?? []).map((vm) => vm.vmid),
    guests: guestsOn.get(h.node) ?? [],
  }));
  return { privileges, mapping, vms, hosts, cluster: clusterOf.plan(clusterFacts), gpuNodes };
}

/** A flat view for printing and JSON: each target with its checks and steps, host by host. */
export interface PlanSection {
  layer: 'token' | 'mapping' | 'host' | 'vm' | 'guest' | 'cluster';
  title: string;
  checks: Check[];
  steps: Step[];
  refused?: string;
}

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
    if (part.host) {
      sections.push({
        layer: 'host',
        title: `host ${part.node}`,
        checks: [],
        steps: part.host.steps,
        refused: part.host.refused,
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
      if (!guest.plan) continue;
      sections.push({
        layer: 'guest',
        title: `guest of VM ${guest.vm.vmid} (${guest.vm.os}${guest.vm.kubernetesNode ? `, ${guest.vm.kubernetesNode}` : ''})`,
        checks: guest.plan.checks,
        steps: guest.plan.steps,
        refused: guest.plan.refused,
      });
    }
  }
  sections.push({
    layer: 'cluster',
    title: 'cluster',
    checks: plan.cluster.checks,
    steps: plan.cluster.steps,
    refused: plan.cluster.refused,
  });
  return sections;
}

/** Why nothing can be applied, when some part refuses. */
export function planRefusal(plan: LabPlan): string | undefined {
  const refused = planSections(plan).find((s) => s.refused)?.refused;
  return plan.vms.refused ?? refused;
}

/** What the user was shown, as one value: two plans with the same digest read the same. */
export function planDigest(plan: LabPlan): string {
  return createHash('sha256')
    .update(JSON.stringify({ sections: planSections(plan), refused: planRefusal(plan) }))
    .digest('hex');
}

export function planIsEmpty(plan: LabPlan): boolean {
  return planSections(plan).every((s) => s.steps.length === 0);
}
