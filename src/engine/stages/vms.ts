// The VM stage of a host (stop, vGPU config, start), and starting again the VMs our runs
// stopped — by a host reboot or an interrupted VM stage — whatever their onboot says.

import { desiredVmsOf, identityOf } from '../../config/derived.ts';
import { listed } from '../../core/text.ts';
import { syncVfPool } from '../../mapping/vf-pool.ts';
import { vmLayer } from '../../vm/layer.ts';
import type { VmChange } from '../../vm/plan.ts';
import type { HostPart } from '../plan.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, type StageContext } from './context.ts';

export function vmStage(context: StageContext, part: HostPart, changes: VmChange[]): Stage {
  const { lab, plan, connections, journal, options } = context;
  const sriov = plan.sriovHosts.find((h) => h.node === part.node);
  const layer = vmLayer(connections.proxmox, desiredVmsOf(lab, new Set(plan.sriovHosts.map((h) => h.node))), {
    mapping: lab.mapping,
    vfPool: lab.sriov.mapping,
    vfHosts: Object.fromEntries(plan.sriovHosts.map((h) => [h.node, h])),
    identity: identityOf(lab.proxmox.token),
    apply: {
      consents: options.consents,
      shutdownTimeoutSeconds: options.shutdownTimeoutSeconds,
      forceStop: options.forceStop,
      stops: journal,
    },
  });
  const steps = changes.flatMap((c) => c.steps);
  return {
    id: `${part.node}/vms`,
    group: `host:${part.node}`,
    fingerprint: fingerprintOf(steps.map((s) => s.id + (s.diff ?? ''))),
    title: `${listed(
      'VM',
      changes.map((c) => c.vmid),
    )}: vGPU`,
    run: async (say) => {
      // The host has made its VFs by now: the pool gets their entries (Proxmox lists them only once they exist).
      if (sriov) {
        const synced = await syncVfPool(connections.proxmox, lab.sriov.mapping, sriov);
        if (synced.changed) say(`mapping ${lab.sriov.mapping}: virtual functions of ${part.node} added`);
      }
      await layer.apply({ ...plan.vms, changes, steps }, { say });
    },
  };
}

/** A stage for VMs an interrupted run left stopped and no VM stage of this run starts. */
export function startStage(context: StageContext, part: HostPart, vmids: number[]): Stage {
  return {
    id: `${part.node}/start`,
    group: `host:${part.node}`,
    fingerprint: vmids.join(','),
    title: `start ${listed('VM', vmids)} (stopped by an interrupted run)`,
    run: (say) => startStoppedVms(context, part.node, vmids, say),
  };
}

/** Starts the given VMs that the journal says our runs stopped, and clears the record. */
export async function startStoppedVms(
  { connections, journal }: StageContext,
  node: string,
  vmids: readonly number[],
  say: (line: string) => void,
): Promise<void> {
  for (const vmid of journal.stoppedVms().filter((v) => vmids.includes(v))) {
    if ((await connections.proxmox.vmStatus(node, vmid)).status !== 'running') {
      await connections.proxmox.waitTask(await connections.proxmox.vmPower(node, vmid, 'start'), 300_000);
      say(`VM ${vmid}: running again`);
    }
    await journal.markStopped(vmid, false);
  }
}
