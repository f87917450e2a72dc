// Every layer's rollback, in reverse order: cluster objects and labels, the guests' kernel
// guard, the VMs' vGPUs (with the machine type and EFI disk they had), the mapping entries,
// then each host's files (one boot-loader refresh; the reboot is left to the user, and
// said). Guests keep their kernel package: it does no harm without a vGPU, and removing a
// kernel is the user's call. Their kernel guard goes: left behind, it would pin kernels
// for a module the guest no longer needs, holding back security fixes.

import { rollbackCluster } from '../cluster/apply.ts';
import { gpuNodesOf, kubernetesNodeOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { TargetError, unlessUnreachable } from '../core/errors.ts';
import { guestLayer } from '../guest/providers.ts';
import { rollbackHost } from '../host/rollback.ts';
import { UBUNTU_PACKAGE } from '../knowledge/packages.ts';
import { rollbackMapping } from '../mapping/apply.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { checkRollbackNotes, rollbackVms } from '../vm/apply.ts';
import { readMarker } from '../vm/plan.ts';
import { guestEnvironment, type LabConnections } from './connections.ts';
import type { Disturbed } from './disturbances.ts';
import { drainAroundRestart } from './stages/nodes.ts';

/** What a lab rollback undid, per layer in the order undone (`rollback --json`, docs/json.md). */
export interface RollbackReport {
  undone: {
    cluster: string[];
    /** Guests whose files of ours were removed (the Ubuntu guests' kernel guard). */
    guest: { vmid: number; removed: string[] }[];
    vm: string[];
    mapping: string[];
    host: { node: string; removed: string[]; rebootNeeded: boolean }[];
  };
  /** What was left as it is, and why (the guests' kernel package; a removed journal). */
  notes: string[];
  /** Every line above, in the order said. */
  log: string[];
}

export async function rollbackLab(
  lab: Lab,
  connections: LabConnections,
  options: { forceStop?: boolean; say?: (line: string) => void } = {},
): Promise<RollbackReport> {
  const report: RollbackReport = {
    undone: { cluster: [], guest: [], vm: [], mapping: [], host: [] },
    notes: [],
    log: [],
  };
  // Each line is said as it happens: a rollback that fails half-way has shown what it undid.
  const note = (into: string[], ...lines: string[]) => {
    for (const line of lines) {
      into.push(line);
      report.log.push(line);
      options.say?.(line);
    }
  };
  const vms = lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host }));
  // A VM line rollback would refuse stops it before anything, the cluster included, changes.
  await checkRollbackNotes(connections.proxmox, vms, lab.sriov.mapping);
  note(report.undone.cluster, ...(await rollbackCluster(connections.kube, lab.kubernetes, gpuNodesOf(lab))));
  // Before the VMs lose their GPU and restart: the guests are up and reachable now.
  for (const vm of lab.vms) {
    const layer = guestLayer(vm, guestEnvironment(connections));
    if (!layer?.rollback) continue;
    const rollback = layer.rollback.bind(layer);
    try {
      const removed = await unlessUnreachable(rollback);
      if (removed instanceof TargetError)
        note(
          report.notes,
          `guest of VM ${vm.vmid}: ${removed.oneLine()}; its kernel guard, if any, stays: run igpu-split rollback again once the guest can be reached`,
        );
      else if (removed.length > 0) {
        report.undone.guest.push({ vmid: vm.vmid, removed });
        note([], `guest of VM ${vm.vmid}: removed ${removed.join(', ')}`);
      }
    } finally {
      await layer.close();
    }
  }
  // A VM restarted by rollback is drained first and uncordoned once Ready, as in apply;
  // each VM's line is said as it is rolled back.
  const rolled = await rollbackVms(connections.proxmox, vms, {
    forceStop: options.forceStop,
    notesChecked: true,
    vfPool: lab.sriov.mapping,
    progress: options.say,
    ...drainAroundRestart(connections.kube, kubernetesNodeOf(lab), { say: options.say }),
  });
  // Said already, one by one, through progress.
  report.undone.vm.push(...rolled.log);
  report.log.push(...rolled.log);
  note(report.undone.mapping, ...(await rollbackMapping(connections.proxmox, lab.mapping, vms)));
  note(report.undone.mapping, ...(await rollbackMapping(connections.proxmox, lab.sriov.mapping, vms)));
  for (const host of lab.hosts.filter((h) => h.ssh)) {
    const access = await connections.host(host.node);
    try {
      const result = await rollbackHost(access);
      if (result.changed.length === 0) continue;
      report.undone.host.push({
        node: host.node,
        removed: result.changed,
        rebootNeeded: result.rebootNeeded,
      });
      note(
        [],
        `host ${host.node}: removed ${result.changed.join(', ')}${result.rebootNeeded ? ' (reboot to make it live)' : ''}`,
      );
    } finally {
      await access.close();
    }
  }
  note(
    report.notes,
    `guests keep their kernel package (${UBUNTU_PACKAGE.kernel}, the Talos extensions): harmless without a vGPU`,
  );
  return report;
}

/**
 * What a rollback would disturb, for its question: the running VMs that carry our notes
 * line are restarted and their Kubernetes nodes drained. No host is rebooted by rollback
 * (a host whose boot files it puts back is named after, for the user to reboot).
 */
export async function rollbackDisturbances(
  api: ProxmoxApi,
  vms: readonly { vmid: number; node: string; kubernetesNode?: string }[],
): Promise<Disturbed> {
  const restarts: number[] = [];
  const drains: string[] = [];
  for (const vm of vms) {
    const config = await api.vmConfig(vm.node, vm.vmid);
    if (!readMarker(config.values.description)) continue;
    if ((await api.vmStatus(vm.node, vm.vmid)).status !== 'running') continue;
    restarts.push(vm.vmid);
    if (vm.kubernetesNode) drains.push(vm.kubernetesNode);
  }
  return { 'vm-restart': restarts, 'node-drain': drains };
}
