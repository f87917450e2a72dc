// Applying the lab plan in the rolling order, host by host (or N at once): drain the
// Kubernetes nodes of the host's VMs → host changes → reboot → host verify → VM changes
// (stop, config, start) → guest changes (+ reboot) → uncordon; the mapping first and the
// cluster objects last. Each stage is journalled when it ends, so `apply --resume`
// continues after an interruption; a lab-wide lock keeps two applies apart.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { HostAccess } from '../access/host.ts';
import { applyClusterPlan, drainNode, uncordonNode, waitNodeReady } from '../cluster/apply.ts';
import type { Lab } from '../config/lab.ts';
import { ManualStepError, TargetError } from '../core/errors.ts';
import { applyTalosPlan } from '../guest/talos/plan.ts';
import { applyUbuntuPlan } from '../guest/ubuntu/apply.ts';
import { applyHostPlan, readState } from '../host/apply.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { verifyHost } from '../host/verify.ts';
import { rebootAndWait } from '../linux/reboot.ts';
import { applyMappingPlan } from '../mapping/apply.ts';
import { applyVmPlan } from '../vm/apply.ts';
import { watchChanges } from './changes.ts';
import type { LabConnections } from './connections.ts';
import type { Journal } from './journal.ts';
import type { HostPart, LabPlan } from './plan.ts';
import type { Stage } from './scheduler.ts';

export interface ApplyOptions {
  consents?: string[];
  rebootTimeoutMs?: number;
  pollMs?: number;
  shutdownTimeoutSeconds?: number;
  forceStop?: boolean;
  drainTimeoutMs?: number;
}

/**
 * The stages of an apply, in order; stages of one group run in sequence. The journal
 * (started) says what an interrupted run left: stages done, nodes cordoned, VMs stopped.
 */
export function applyStages(
  lab: Lab,
  plan: LabPlan,
  labConnections: LabConnections,
  journal: Journal,
  options: ApplyOptions = {},
): Stage[] {
  // Every change a stage makes is reported, so the journal knows which stages began one.
  const connections = watchChanges(labConnections);
  const stages: Stage[] = [];
  if (plan.mapping.steps.length > 0) {
    stages.push({
      id: 'lab/mapping',
      group: 'lab',
      fingerprint: fingerprintOf(plan.mapping.steps.map((s) => s.id + (s.diff ?? ''))),
      title: `mapping ${plan.mapping.name}`,
      run: async (say) => {
        await applyMappingPlan(connections.proxmox, plan.mapping);
        say(`mapping ${plan.mapping.name} ${plan.mapping.create ? 'created' : 'updated'}`);
      },
    });
  }
  for (const part of plan.hosts) stages.push(...hostStages(lab, plan, part, connections, journal, options));
  if (plan.cluster.steps.length > 0) {
    stages.push({
      id: 'lab/cluster',
      group: 'lab-end',
      fingerprint: fingerprintOf(plan.cluster.steps.map((s) => s.id)),
      title: 'cluster objects and node labels',
      run: async (say) => void (await applyClusterPlan(connections.kube, plan.cluster, say)),
    });
  }
  return stages;
}

function hostStages(
  lab: Lab,
  plan: LabPlan,
  part: HostPart,
  connections: LabConnections,
  journal: Journal,
  options: ApplyOptions,
): Stage[] {
  const stages: Stage[] = [];
  const group = `host:${part.node}`;
  const id = (name: string) => `${part.node}/${name}`;
  const vmChanges = plan.vms.changes.filter((c) => part.vmids.includes(c.vmid));
  const guestWork = part.guests.filter(
    (g) => (g.ubuntu?.steps.length ?? 0) + (g.talos?.steps.length ?? 0) > 0,
  );
  const hostWork = (part.host?.steps.length ?? 0) > 0;
  // VMs an interrupted run stopped: those with a change are started by the VM stage;
  // the others (stopped after their change was made) get a stage of their own.
  const notChanged = part.vmids.filter((vmid) => !vmChanges.some((c) => c.vmid === vmid));
  const leftStopped = journal.stoppedVms().filter((vmid) => notChanged.includes(vmid));
  // A run interrupted between drain and uncordon left nodes cordoned: uncordon them even
  // when nothing else is left to do on this host.
  const done = journal.ids();
  const leftCordoned = done.includes(id('drain')) && !done.includes(id('uncordon'));
  if (
    !hostWork &&
    vmChanges.length === 0 &&
    guestWork.length === 0 &&
    !leftCordoned &&
    leftStopped.length === 0
  )
    return stages;
  const disturbing =
    part.host?.reboot === true || vmChanges.some((c) => c.wasRunning) || guestWork.length > 0 || leftCordoned;
  const nodes = lab.vms
    .filter((vm) => vm.host === part.node && vm.kubernetesNode)
    .map((vm) => vm.kubernetesNode as string)
    .filter((name) => plan.gpuNodes.some((n) => n.name === name));
  const present = async () => {
    const found: string[] = [];
    for (const name of nodes) if (await connections.kube.get('v1', 'Node', name)) found.push(name);
    return found;
  };
  // Nodes someone had cordoned before the first drain stay cordoned after the run; the
  // journal keeps that across an interruption.
  if (disturbing && nodes.length > 0) {
    stages.push({
      id: id('drain'),
      group,
      fingerprint: nodes.join(','),
      title: `drain ${nodes.join(', ')}`,
      run: async (say) => {
        for (const name of await present()) {
          if (!journal.marked(`drained:${name}`)) {
            const before = (await connections.kube.get('v1', 'Node', name))?.spec?.unschedulable === true;
            await journal.mark(`cordoned-before:${name}`, before);
            await journal.mark(`drained:${name}`, true);
          }
          await drainNode(connections.kube, name, {
            timeoutMs: options.drainTimeoutMs,
            pollMs: options.pollMs,
          });
          say(`drained ${name}`);
        }
      },
    });
  }
  if (hostWork && part.host) {
    const hostPlan = part.host;
    stages.push({
      id: id('host'),
      group,
      fingerprint: fingerprintOf(hostPlan.steps.map((s) => s.id + (s.diff ?? ''))),
      title: `host ${part.node}: ${hostPlan.steps.length} change(s)${hostPlan.reboot ? ', reboot' : ''}`,
      run: async (say) => {
        let host: HostAccess = await connections.host(part.node);
        try {
          // Resuming: a lock on the host is the one the interrupted run left.
          const result = await applyHostPlan(host, hostPlan, {
            force: false,
            // The host lock names this lab's runs: a resumed run takes over its own, never another's.
            lockOwner: `lab ${journal.dir}`,
            takeOverLock: journal.resumed,
          });
          say(`host ${part.node}: ${result.done.length} step(s) applied`);
          if (result.rebootNeeded) {
            // The reboot stops the host's VMs: the journal says they ran, so they run again
            // even if this run is interrupted before it starts them.
            for (const vmid of part.vmids)
              if ((await connections.proxmox.vmStatus(part.node, vmid)).status === 'running')
                await journal.markStopped(vmid, true);
            host = await rebootAndWait(host, {
              reconnect: () => connections.host(part.node),
              timeoutMs: options.rebootTimeoutMs ?? 900_000,
              pollMs: options.pollMs,
            });
            say(`host ${part.node}: rebooted`);
            // The VM stage starts the ones it changes.
            await startStoppedVms(part.node, notChanged, connections, journal, say);
          }
          const failed = verifyHost(await gatherHostFacts(host), await readState(host)).filter(
            (c) => c.status === 'fail',
          );
          if (failed.length > 0) {
            throw new TargetError(`host ${part.node} does not verify: ${failed[0]?.evidence}`, {
              target: host.target,
              fix: failed[0]?.fix ?? 'run igpu-split host verify',
            });
          }
        } finally {
          await host.close();
        }
      },
    });
  }
  if (vmChanges.length > 0) {
    stages.push({
      id: id('vms'),
      group,
      fingerprint: fingerprintOf(vmChanges.flatMap((c) => c.steps.map((s) => s.id + (s.diff ?? '')))),
      title: `VMs ${vmChanges.map((c) => c.vmid).join(', ')}: vGPU`,
      run: async (say) =>
        void (await applyVmPlan(
          connections.proxmox,
          { ...plan.vms, changes: vmChanges },
          {
            consents: options.consents,
            shutdownTimeoutSeconds: options.shutdownTimeoutSeconds,
            forceStop: options.forceStop,
            progress: say,
            stops: journal,
          },
        )),
    });
  }
  if (leftStopped.length > 0) {
    stages.push({
      id: id('start'),
      group,
      fingerprint: leftStopped.join(','),
      title: `start VMs ${leftStopped.join(', ')} (stopped by an interrupted run)`,
      run: (say) => startStoppedVms(part.node, leftStopped, connections, journal, say),
    });
  }
  for (const guest of guestWork) {
    stages.push({
      id: id(`guest/${guest.vm.vmid}`),
      group,
      fingerprint: fingerprintOf((guest.ubuntu?.steps ?? guest.talos?.steps ?? []).map((s) => s.id)),
      title: `guest of VM ${guest.vm.vmid} (${guest.vm.os})`,
      run: async (say) => {
        if (guest.ubuntu) {
          const access = await connections.guest(guest.vm);
          const result = await applyUbuntuPlan(access, guest.ubuntu, {
            reconnect: () => connections.guest(guest.vm),
            rebootTimeoutMs: options.rebootTimeoutMs,
            pollMs: options.pollMs,
            progress: say,
          });
          await result.guest.close();
        } else if (guest.talos) {
          const result = await applyTalosPlan(
            guest.talos,
            connections.talosctl,
            join(connections.talosOut, guest.talos.node),
            say,
          );
          if (!result.applied) {
            throw new ManualStepError(`talosctl is not installed: wrote ${result.files.join(', ')}`, {
              target: `talos ${guest.talos.node}`,
              fix: `run: ${result.commands.join(' && ')}; then igpu-split apply --resume`,
            });
          }
        }
      },
    });
  }
  if (disturbing && nodes.length > 0) {
    stages.push({
      id: id('uncordon'),
      group,
      fingerprint: nodes.join(','),
      title: `uncordon ${nodes.join(', ')}`,
      run: async (say) => {
        for (const name of await present()) {
          if (journal.marked(`cordoned-before:${name}`)) {
            say(`${name} was cordoned before this run: left so`);
            continue;
          }
          // The next host is drained only once this one's nodes serve again.
          await waitNodeReady(connections.kube, name, {
            timeoutMs: options.rebootTimeoutMs ?? 900_000,
            pollMs: options.pollMs,
          });
          await uncordonNode(connections.kube, name);
          await journal.mark(`drained:${name}`, false);
          say(`uncordoned ${name}`);
        }
      },
    });
  }
  return stages;
}

/**
 * Starts the given VMs that the journal says our runs stopped — by a host reboot or an
 * interrupted VM stage — whatever their onboot says, and clears the record.
 */
async function startStoppedVms(
  node: string,
  vmids: readonly number[],
  connections: LabConnections,
  journal: Journal,
  say: (line: string) => void,
) {
  for (const vmid of journal.stoppedVms().filter((v) => vmids.includes(v))) {
    if ((await connections.proxmox.vmStatus(node, vmid)).status !== 'running') {
      await connections.proxmox.waitTask(await connections.proxmox.vmPower(node, vmid, 'start'), 300_000);
      say(`VM ${vmid}: running again`);
    }
    await journal.markStopped(vmid, false);
  }
}

function fingerprintOf(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 12);
}
