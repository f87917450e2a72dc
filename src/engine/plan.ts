// One plan across the layers. Every target is gathered read-only, in parallel with a
// bound; each layer plans its part; the result is grouped by Proxmox host (host, its
// VMs, their guests) plus the lab-wide mapping and cluster parts, each step saying what
// it disturbs. The engine applies it in the rolling order (apply.ts).

import { createHash } from 'node:crypto';
import type { HostAccess } from '../access/host.ts';
import { type ClusterPlan, type GpuNode, gatherClusterFacts, planCluster } from '../cluster/plan.ts';
import { desiredVmsOf, gpuNodesOf, identityOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { bounded } from '../core/bounded.ts';
import type { Check, Step } from '../core/model.ts';
import { gatherTalosFacts, planTalos, type TalosPlan } from '../guest/talos/plan.ts';
import { gatherUbuntuFacts } from '../guest/ubuntu/gather.ts';
import { planUbuntu, type UbuntuPlan } from '../guest/ubuntu/plan.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { type HostPlan, planHost } from '../host/plan.ts';
import { hostVerdict } from '../host/verdict.ts';
import { mappingPrivileges } from '../mapping/apply.ts';
import { gatherMappingFacts, type MappingPlan, planMapping } from '../mapping/plan.ts';
import { vmPlanPrivileges } from '../vm/apply.ts';
import { gatherVmFacts } from '../vm/gather.ts';
import { planVms, type VmPlan } from '../vm/plan.ts';
import { type LabConnections, type LabVm, osImageOf } from './connections.ts';

export interface GuestPart {
  vm: LabVm;
  ubuntu?: UbuntuPlan;
  talos?: TalosPlan;
}

export interface HostPart {
  node: string;
  /** Absent when the lab file gives the host no SSH address (its host layer is not managed). */
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

export async function planLab(
  lab: Lab,
  connections: LabConnections,
  options: PlanOptions = {},
): Promise<LabPlan> {
  const limit = options.parallel ?? 8;
  const gpuNodes = gpuNodesOf(lab);
  const usedHosts = lab.hosts.filter((h) => lab.vms.some((vm) => vm.host === h.node) || h.ssh);
  const [hostPlans, mappingFacts, vmFacts, guests, clusterFacts] = await Promise.all([
    bounded(usedHosts, limit, async (h) =>
      h.ssh
        ? withAccess(
            () => connections.host(h.node),
            async (access) => {
              const facts = await gatherHostFacts(access);
              return { plan: planHost(facts), gpu: hostVerdict(facts).gpu };
            },
          )
        : undefined,
    ),
    gatherMappingFacts(connections.proxmox, lab.mapping, [...new Set(lab.vms.map((vm) => vm.host))]),
    gatherVmFacts(connections.proxmox, desiredVmsOf(lab), lab.mapping),
    bounded(lab.vms, limit, async (vm): Promise<GuestPart> => {
      if (vm.os === 'ubuntu' && vm.guest)
        return {
          vm,
          ubuntu: await withAccess(
            () => connections.guest(vm),
            async (g) => planUbuntu(await gatherUbuntuFacts(g)),
          ),
        };
      if (vm.os === 'talos' && vm.talos)
        return {
          vm,
          talos: await planTalos(
            vm.talos,
            await gatherTalosFacts(
              vm.talos.node,
              connections.talosctl,
              osImageOf(() => connections.kube, vm),
            ),
            connections.factory,
          ),
        };
      return { vm };
    }),
    gatherClusterFacts(connections.kube, lab.kubernetes, gpuNodes),
  ]);
  const mapping = planMapping(mappingFacts);
  const vms = planVms(vmFacts, desiredVmsOf(lab), {
    mapping: lab.mapping,
    identity: identityOf(lab.proxmox.token),
    changeMachine: options.changeMachine,
    resetEfiKeys: options.resetEfiKeys,
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
  const vmsOf = Map.groupBy(lab.vms, (vm) => vm.host);
  const guestsOf = Map.groupBy(guests, (g) => g.vm.host);
  const hosts: HostPart[] = usedHosts.map((h, i) => ({
    node: h.node,
    host: hostPlans[i]?.plan,
    vmids: (vmsOf.get(h.node) ?? []).map((vm) => vm.vmid),
    guests: guestsOf.get(h.node) ?? [],
  }));
  return {
    privileges,
    mapping,
    vms,
    hosts,
    cluster: planCluster(clusterFacts, lab.kubernetes, gpuNodes),
    gpuNodes,
  };
}

/** A flat view for printing and JSON: each target with its checks and steps, host by host. */
export interface PlanSection {
  title: string;
  checks: Check[];
  steps: Step[];
  refused?: string;
}

export function planSections(plan: LabPlan): PlanSection[] {
  const sections: PlanSection[] = [];
  const lacking = plan.privileges.find((c) => c.status === 'fail');
  if (lacking)
    sections.push({ title: 'Proxmox token', checks: plan.privileges, steps: [], refused: lacking.evidence });
  sections.push({
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
        title: `host ${part.node}`,
        checks: [],
        steps: part.host.steps,
        refused: part.host.unsupported ?? (part.host.problems[0] ? part.host.problems.join('; ') : undefined),
      });
    }
    for (const vmid of part.vmids) {
      sections.push({
        title: `VM ${vmid} on ${part.node}`,
        checks: checksOf(vmid, part.node),
        steps: changeOf.get(vmid)?.steps ?? [],
      });
    }
    for (const guest of part.guests) {
      const title = `guest of VM ${guest.vm.vmid} (${guest.vm.os}${guest.vm.kubernetesNode ? `, ${guest.vm.kubernetesNode}` : ''})`;
      if (guest.ubuntu)
        sections.push({
          title,
          checks: guest.ubuntu.checks,
          steps: guest.ubuntu.steps,
          refused: guest.ubuntu.unsupported,
        });
      else if (guest.talos)
        sections.push({
          title,
          checks: guest.talos.checks,
          steps: guest.talos.steps,
          refused: guest.talos.refused,
        });
    }
  }
  sections.push({
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
