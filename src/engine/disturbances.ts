// What a change will disturb, in one line for the question before it ("2 host reboots
// (pve1, pve2), 2 VM restarts (101, 102), 2 node drains (k3s-1, talos-1)"): read from
// the steps' `disturbs`, named by what they disturb — the host, the VM, the Kubernetes node.

import type { Lab } from '../config/lab.ts';
import {
  type Disturbance,
  disturbancesOf,
  drainingDisturbances,
  NOTHING_DISTURBED,
  type Step,
} from '../core/model.ts';
import { disturbingSteps, type HostPart, type LabPlan } from './plan.ts';

/** What each kind of disturbance hits, by name (hosts, VM ids, Kubernetes nodes). */
export type Disturbed = Partial<Record<Disturbance, readonly (string | number)[]>>;

const NOUNS: Record<Disturbance, [string, string]> = {
  'host-reboot': ['host reboot', 'host reboots'],
  'vm-restart': ['VM restart', 'VM restarts'],
  'guest-reboot': ['guest reboot', 'guest reboots'],
  'node-drain': ['node drain', 'node drains'],
  'guest-drain': ['node drain by Talos', 'node drains by Talos'],
};

const ORDER: Disturbance[] = ['host-reboot', 'vm-restart', 'guest-reboot', 'node-drain', 'guest-drain'];

/** `2 host reboots (pve1, pve2), 1 VM restart (101)`; `nothing` when nothing is hit. */
export function disturbanceSummary(disturbed: Disturbed, nothing = NOTHING_DISTURBED): string {
  const parts = ORDER.flatMap((kind) => {
    const names = [...new Set(disturbed[kind] ?? [])];
    if (names.length === 0) return [];
    const [one, many] = NOUNS[kind];
    return [`${names.length} ${names.length === 1 ? one : many} (${names.join(', ')})`];
  });
  return parts.length > 0 ? parts.join(', ') : nothing;
}

/** Adds `names` under `kind`. */
function add(
  into: Record<Disturbance, (string | number)[]>,
  kind: Disturbance,
  ...names: (string | number)[]
) {
  into[kind].push(...names);
}

function empty(): Record<Disturbance, (string | number)[]> {
  return { 'host-reboot': [], 'vm-restart': [], 'guest-reboot': [], 'node-drain': [], 'guest-drain': [] };
}

/** What steps disturb, each named by its step's target (a layer command on one kind of target). */
export function stepDisturbances(steps: readonly Step[]): Disturbed {
  const into = empty();
  for (const step of steps) for (const kind of step.disturbs) add(into, kind, step.target);
  return into;
}

/**
 * What the steps of one VM (a VM or guest change) disturb: its restart or its guest's
 * reboot by VM id, a drain by its Kubernetes node (a VM without one needs no drain).
 */
export function vmDisturbances(
  changes: readonly { vmid: number; steps: readonly Step[]; kubernetesNode?: string }[],
): Disturbed {
  const into = empty();
  for (const change of changes) {
    const kinds = disturbancesOf(change.steps);
    if (kinds.has('vm-restart')) add(into, 'vm-restart', change.vmid);
    if (kinds.has('guest-reboot')) add(into, 'guest-reboot', change.vmid);
    if (!change.kubernetesNode) continue;
    // A step that drains its node itself (a Talos upgrade) needs no drain of the engine's.
    if (drainingDisturbances(change.steps).size > 0) add(into, 'node-drain', change.kubernetesNode);
    else if (kinds.has('guest-drain')) add(into, 'guest-drain', change.kubernetesNode);
  }
  return into;
}

/**
 * What a lab apply disturbs, as the engine carries it out (engine/stages): a host whose
 * steps disturb anything has its GPU nodes drained; a host step that reboots reboots it.
 */
export function labDisturbances(lab: Lab, plan: LabPlan): Disturbed {
  const into = empty();
  for (const part of plan.hosts) {
    const hostSteps = part.host?.steps ?? [];
    if (disturbancesOf(hostSteps).has('host-reboot')) add(into, 'host-reboot', part.node);
    const byVm = vmDisturbances(
      lab.vms
        .filter((vm) => part.vmids.includes(vm.vmid))
        .map((vm) => ({
          vmid: vm.vmid,
          steps: [
            ...plan.vms.changes.filter((c) => c.vmid === vm.vmid).flatMap((c) => c.steps),
            ...part.guests.filter((g) => g.vm.vmid === vm.vmid).flatMap(disturbingSteps),
          ],
        })),
    );
    add(into, 'vm-restart', ...(byVm['vm-restart'] ?? []));
    add(into, 'guest-reboot', ...(byVm['guest-reboot'] ?? []));
    // As stages/index.ts drains (hostDrains): the host's GPU nodes, not one its guest drains itself.
    const drains = hostDrains(lab, plan, part);
    add(into, 'node-drain', ...drains.engine);
    add(into, 'guest-drain', ...drains.byGuest);
  }
  return into;
}

/**
 * Which GPU nodes of a host the engine drains, and which drain themselves in their guest's
 * step (a Talos upgrade: TALOS_UPGRADE_DRAIN). A host reboot or a VM restart drains every GPU
 * node of the host; a guest reboot alone every one but those whose guest drains itself.
 */
export function hostDrains(lab: Lab, plan: LabPlan, part: HostPart): { engine: string[]; byGuest: string[] } {
  const gpuNodes = new Set(plan.gpuNodes.map((n) => n.name));
  const nodes = lab.vms.flatMap((vm) =>
    vm.host === part.node && vm.kubernetesNode && gpuNodes.has(vm.kubernetesNode) ? [vm.kubernetesNode] : [],
  );
  const hostAndVms = [
    ...(part.host?.steps ?? []),
    ...plan.vms.changes.filter((c) => part.vmids.includes(c.vmid)).flatMap((c) => c.steps),
  ];
  if (disturbancesOf(hostAndVms).size > 0) return { engine: nodes, byGuest: [] };
  const selfDraining = new Set(
    part.guests.flatMap((g) =>
      g.vm.kubernetesNode && disturbancesOf(disturbingSteps(g)).has('guest-drain')
        ? [g.vm.kubernetesNode]
        : [],
    ),
  );
  const byGuest = nodes.filter((n) => selfDraining.has(n));
  const others = drainingDisturbances(part.guests.flatMap(disturbingSteps)).size > 0;
  return { engine: others ? nodes.filter((n) => !selfDraining.has(n)) : [], byGuest };
}
