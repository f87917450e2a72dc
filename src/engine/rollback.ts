// Every layer's rollback, in reverse order: cluster objects and labels, the VMs' vGPUs
// (with the machine type and EFI disk they had), the mapping entries, then each host's
// files (one boot-loader refresh; the reboot is left to the user, and said). Guests keep
// their kernel package: it does no harm without a vGPU, and removing a kernel is the
// user's call.

import { rollbackCluster } from '../cluster/apply.ts';
import { gpuNodesOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { rollbackHost } from '../host/rollback.ts';
import { UBUNTU_PACKAGE } from '../knowledge/packages.ts';
import { rollbackMapping } from '../mapping/apply.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { checkRollbackNotes, rollbackVms } from '../vm/apply.ts';
import { readMarker } from '../vm/plan.ts';
import type { LabConnections } from './connections.ts';
import type { Disturbed } from './disturbances.ts';
import { drainAroundRestart } from './stages/nodes.ts';

export async function rollbackLab(
  lab: Lab,
  connections: LabConnections,
  options: { forceStop?: boolean; say?: (line: string) => void } = {},
): Promise<string[]> {
  const log: string[] = [];
  // Each line is said as it happens: a rollback that fails half-way has shown what it undid.
  const note = (...lines: string[]) => {
    for (const line of lines) {
      log.push(line);
      options.say?.(line);
    }
  };
  const vms = lab.vms.map((vm) => ({ vmid: vm.vmid, node: vm.host }));
  // A VM line rollback would refuse stops it before anything, the cluster included, changes.
  await checkRollbackNotes(connections.proxmox, vms);
  note(...(await rollbackCluster(connections.kube, lab.kubernetes, gpuNodesOf(lab))));
  // A VM restarted by rollback is drained first and uncordoned once Ready, as in apply;
  // each VM's line is said as it is rolled back.
  const rolled = await rollbackVms(connections.proxmox, vms, {
    forceStop: options.forceStop,
    notesChecked: true,
    progress: options.say,
    ...drainAroundRestart(
      connections.kube,
      (vmid) => lab.vms.find((vm) => vm.vmid === vmid)?.kubernetesNode,
      {
        say: options.say,
      },
    ),
  });
  log.push(...rolled.log);
  note(...(await rollbackMapping(connections.proxmox, lab.mapping, vms)));
  for (const host of lab.hosts.filter((h) => h.ssh)) {
    const access = await connections.host(host.node);
    try {
      const result = await rollbackHost(access);
      if (result.changed.length > 0)
        note(
          `host ${host.node}: removed ${result.changed.join(', ')}${result.rebootNeeded ? ' (reboot to make it live)' : ''}`,
        );
    } finally {
      await access.close();
    }
  }
  note(
    `guests keep their kernel package (${UBUNTU_PACKAGE.kernel}, the Talos extensions): harmless without a vGPU`,
  );
  return log;
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
