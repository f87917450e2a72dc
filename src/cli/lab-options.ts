// What the Proxmox-side commands share: --lab (the lab file), --vm to narrow the VMs,
// and opening the API with the file's token and TLS trust.

import type { Command } from 'commander';
import { type DesiredVm, desiredVmsOf, plannedVfs, type SriovHost } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { UsageError } from '../core/errors.ts';
import { MAX_IGPU_VFS } from '../knowledge/igpu-platforms.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { sayLabNotes } from './lab-notes.ts';
import {
  addConnectTimeout,
  addLabOption,
  addRequestTimeout,
  addVmOption,
  JSON_HELP,
  type TimeoutOptions,
  timeoutsOf,
} from './option-checks.ts';

export interface LabOptions extends TimeoutOptions {
  lab: string;
  vm?: string[];
  json?: boolean;
}

export function addLabOptions(command: Command): Command {
  addLabOption(command).option('--json', JSON_HELP);
  return addRequestTimeout(addConnectTimeout(command));
}

export function addVmFilter(command: Command): Command {
  return addVmOption(command);
}

export interface OpenLab {
  lab: Lab;
  api: ProxmoxApi;
  close(): Promise<void>;
}

export async function openLab(options: LabOptions): Promise<OpenLab> {
  const [{ loadLab }, { openProxmox }] = await Promise.all([
    import('../config/load.ts'),
    import('../engine/connections.ts'),
  ]);
  const lab = sayLabNotes(await loadLab(options.lab));
  const { api, close } = await openProxmox(lab, timeoutsOf(options));
  return { lab, api, close };
}

/**
 * The lab's node VMs, narrowed by --vm (every named VM must be in the file), and the
 * SR-IOV hosts their VFs come from: the hosts the VF pool mapping (sriov.mapping) has
 * entries for (apply made them), and those the lab file says `mode: sriov` for. The VM
 * commands read only Proxmox; the whole-lab plan also reads each host.
 */
export async function desiredVms(
  opened: OpenLab,
  only?: string[],
): Promise<{ desired: DesiredVm[]; sriovHosts: SriovHost[] }> {
  const { lab, api } = opened;
  const pool = (await api.mappings()).some((m) => m.id === lab.sriov.mapping)
    ? await api.mapping(lab.sriov.mapping)
    : undefined;
  const entries = Map.groupBy(pool?.map ?? [], (entry) => /(?:^|,)node=([^,]+)/.exec(entry)?.[1] ?? '');
  const sriovHosts: SriovHost[] = lab.hosts
    .filter((h) => h.mode === 'sriov' || entries.has(h.node))
    .map((h) => ({
      node: h.node,
      pfBdf: '0000:00:02.0',
      // Before apply made the pool's entries: the count the host plan will make.
      vfs:
        entries.get(h.node)?.length ??
        plannedVfs(h.vfs, lab.vms.filter((vm) => vm.host === h.node).length, MAX_IGPU_VFS).vfs,
    }));
  const all = desiredVmsOf(lab, new Set(sriovHosts.map((h) => h.node)));
  for (const id of only ?? []) {
    if (!all.some((vm) => String(vm.vmid) === id))
      throw new UsageError(`--vm ${id}: no such VM in the lab file`, {
        fix: `VMs are: ${all.map((vm) => vm.vmid).join(', ')}`,
      });
  }
  return { desired: only ? all.filter((vm) => only.includes(String(vm.vmid))) : all, sriovHosts };
}

/** The VM layer's options for the VF pool. */
export function vfOptions(lab: Lab, sriovHosts: readonly SriovHost[]) {
  return { vfPool: lab.sriov.mapping, vfHosts: Object.fromEntries(sriovHosts.map((h) => [h.node, h])) };
}
