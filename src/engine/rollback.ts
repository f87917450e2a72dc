// Every layer's rollback, in reverse order: cluster objects and labels, the VMs' vGPUs
// (with the machine type and EFI disk they had), the mapping entries, then each host's
// files (one boot-loader refresh; the reboot is left to the user, and said). Guests keep
// their kernel package: it does no harm without a vGPU, and removing a kernel is the
// user's call.

import { drainNode, rollbackCluster, uncordonNode, waitNodeReady } from '../cluster/apply.ts';
import { gpuNodesOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { rollbackHost } from '../host/rollback.ts';
import { UBUNTU_PACKAGE } from '../knowledge/packages.ts';
import { rollbackMapping } from '../mapping/apply.ts';
import { checkRollbackNotes, rollbackVms } from '../vm/apply.ts';
import type { LabConnections } from './connections.ts';

/** What a lab rollback undid, per layer in the order undone (`rollback --json`, docs/json.md). */
export interface RollbackReport {
  undone: {
    cluster: string[];
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
    undone: { cluster: [], vm: [], mapping: [], host: [] },
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
  await checkRollbackNotes(connections.proxmox, vms);
  note(report.undone.cluster, ...(await rollbackCluster(connections.kube, lab.kubernetes, gpuNodesOf(lab))));
  // A VM restarted by rollback is drained first and uncordoned once Ready, as in apply.
  const nodeOf = async (vmid: number) => {
    const name = lab.vms.find((vm) => vm.vmid === vmid)?.kubernetesNode;
    // A node the cluster does not have is not drained; a read that fails stops the rollback.
    return name && (await connections.kube.get('v1', 'Node', name)) ? name : undefined;
  };
  const rolled = await rollbackVms(connections.proxmox, vms, {
    forceStop: options.forceStop,
    notesChecked: true,
    beforeStop: async (vm) => {
      const name = await nodeOf(vm.vmid);
      if (name) await drainNode(connections.kube, name);
    },
    afterStart: async (vm) => {
      const name = await nodeOf(vm.vmid);
      if (!name) return;
      await waitNodeReady(connections.kube, name);
      await uncordonNode(connections.kube, name);
    },
  });
  note(report.undone.vm, ...rolled.log);
  note(report.undone.mapping, ...(await rollbackMapping(connections.proxmox, lab.mapping, vms)));
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
