// The stages of an apply in the rolling order, one builder per stage kind (kind's
// one-action-per-folder): the mapping first; then per Proxmox host drain → host changes
// (+ reboot, verify) → VM changes (stop, config, start) → guest changes (+ reboot) →
// uncordon; the cluster objects last. Which nodes drain is read from the steps' `disturbs`:
// not a node whose guest step drains it itself (a Talos upgrade).

import type { Lab } from '../../config/lab.ts';
import type { Step } from '../../core/model.ts';
import { disturbancesOf } from '../../core/model.ts';
import { watchChanges } from '../changes.ts';
import type { LabConnections } from '../connections.ts';
import { hostDrains } from '../disturbances.ts';
import type { Journal } from '../journal.ts';
import type { HostPart, LabPlan } from '../plan.ts';
import { haMarksOf, restoreHaAfterTurn } from '../rollout/ha.ts';
import type { Stage } from '../scheduler.ts';
import { clusterStage } from './cluster.ts';
import { type ApplyOptions, asRunning, type StageContext } from './context.ts';
import { guestStage } from './guest.ts';
import { hostStage } from './host.ts';
import { mappingStage } from './mapping.ts';
import { drainStage, nodesOn, readyStage, uncordonStage } from './nodes.ts';
import { startStage, vmStage } from './vms.ts';

export { type ApplyOptions, waitingStage } from './context.ts';

/**
 * The stages of an apply, in order; stages of one group run in sequence. The journal
 * (started) says what an interrupted run left: stages done, nodes cordoned, VMs stopped.
 */
export function applyStages(
  lab: Lab,
  plan: LabPlan,
  connections: LabConnections,
  journal: Journal,
  options: ApplyOptions = {},
): Stage[] {
  // Every change a stage makes is reported, so the journal knows which stages began one.
  const context: StageContext = { lab, plan, connections: watchChanges(connections), journal, options };
  return [
    ...mappingStage(context),
    ...plan.hosts.flatMap((part) => hostGroup(context, part)),
    ...clusterStage(context),
  ].map(asRunning);
}

function hostGroup(context: StageContext, part: HostPart): Stage[] {
  const { plan, journal } = context;
  const vmChanges = plan.vms.changes.filter((c) => part.vmids.includes(c.vmid));
  const guests = part.guests.filter((g) => (g.plan?.steps.length ?? 0) > 0);
  const hostPlan = part.host && part.host.steps.length > 0 ? part.host : undefined;
  // VMs an interrupted run stopped: those with a change are started by the VM stage;
  // the others (stopped after their change was made) by the host stage or a stage of their own.
  const notChanged = part.vmids.filter((vmid) => !vmChanges.some((c) => c.vmid === vmid));
  const leftStopped = journal.stoppedVms().filter((vmid) => notChanged.includes(vmid));
  // A run interrupted between drain and uncordon left nodes cordoned: uncordon them even
  // when nothing else is left to do on this host.
  const done = journal.ids();
  const leftCordoned = done.includes(`${part.node}/drain`) && !done.includes(`${part.node}/uncordon`);
  const steps: Step[] = [
    ...(hostPlan?.steps ?? []),
    ...vmChanges.flatMap((c) => c.steps),
    ...guests.flatMap((g) => g.plan?.steps ?? []),
  ];
  // HA states an interrupted turn set and did not put back: the host stage puts them back, or a stage of their own.
  const leftHa = haMarksOf(journal.allMarks(), part.node);
  if (steps.length === 0 && !leftCordoned && leftStopped.length === 0 && leftHa.length === 0) return [];
  // The nodes the engine drains: not one whose only disturbance is a Talos upgrade, which
  // drains it itself (hostDrains); those a run left cordoned, to uncordon them.
  const { engine, byGuest } = hostDrains(context.lab, plan, part);
  // A host reboot also takes down the Kubernetes nodes of VMs the lab does not name (the
  // rollout maps them by SMBIOS uuid): they are drained too.
  const rebooting = disturbancesOf(hostPlan?.steps ?? []).has('host-reboot');
  const others = rebooting ? (plan.rollout?.disruptions.find((d) => d.node === part.node)?.nodes ?? []) : [];
  const nodes = [
    ...new Set([
      ...nodesOn(context, part).filter(
        (name) => engine.includes(name) || (leftCordoned && journal.marked(`drained:${name}`)),
      ),
      ...others,
    ]),
  ];
  const drains = nodes.length > 0;
  return [
    ...(drains ? [drainStage(context, part, nodes)] : []),
    ...(hostPlan ? [hostStage(context, part, hostPlan, notChanged)] : []),
    ...(vmChanges.length > 0 ? [vmStage(context, part, vmChanges)] : []),
    ...(leftStopped.length > 0 ? [startStage(context, part, leftStopped)] : []),
    ...(leftHa.length > 0 && !hostPlan ? [haRestoreStage(context, part)] : []),
    ...guests.map((guest) => guestStage(context, part, guest)),
    ...(drains ? [uncordonStage(context, part, nodes)] : []),
    ...(byGuest.length > 0 ? [readyStage(context, part, byGuest)] : []),
  ];
}

/** Puts back the HA states an interrupted turn of this host set (rollout/ha.ts). */
function haRestoreStage(context: StageContext, part: HostPart): Stage {
  const left = haMarksOf(context.journal.allMarks(), part.node);
  return {
    id: `${part.node}/ha`,
    group: `host:${part.node}`,
    fingerprint: left.map((c) => `${c.sid}=${c.from}`).join(','),
    title: `HA: ${left.map((c) => c.sid).join(', ')} back to their states (set by an interrupted run)`,
    run: (say) => restoreHaAfterTurn(context.connections.proxmox, context.journal, part.node, say),
  };
}
