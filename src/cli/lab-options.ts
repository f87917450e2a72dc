// What the Proxmox-side commands share: --lab (the lab file), --vm to narrow the VMs,
// and opening the API with the file's token and TLS trust.

import type { Command } from 'commander';
import { desiredVmsOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { UsageError } from '../core/errors.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import type { DesiredVm } from '../vm/gather.ts';
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

/** The lab's node VMs, narrowed by --vm (every named VM must be in the file). */
export function desiredVms(lab: Lab, only?: string[]): DesiredVm[] {
  const all = desiredVmsOf(lab);
  if (!only) return all;
  for (const id of only) {
    if (!all.some((vm) => String(vm.vmid) === id))
      throw new UsageError(`--vm ${id}: no such VM in the lab file`, {
        fix: `VMs are: ${all.map((vm) => vm.vmid).join(', ')}`,
      });
  }
  return all.filter((vm) => only.includes(String(vm.vmid)));
}
