// Applying the VM plan one VM at a time (so a cluster loses at most one node at once):
// privileges checked up front for every VM, then per VM — the config re-read and compared
// with the digest the plan was made from, graceful shutdown (the cluster layer drains
// first through a hook), one config change guarded by the digest, the EFI disk recreated
// when consented, start and wait. A start that fails puts the old config back and starts
// the VM again, so a VM that was running is never left stopped by us without saying so.

import { IgpuSplitError, TargetError } from '../core/errors.ts';
import type { Privilege, ProxmoxApi } from '../proxmox/api.ts';
import { configPrivileges } from '../proxmox/api-spec.ts';
import { readMarker, type VmChange, type VmMarker, type VmPlan, withMarker } from './plan.ts';

export interface VmApplyOptions {
  /** Options the user gave, matched against steps' `consent`. */
  consents?: readonly string[];
  shutdownTimeoutSeconds?: number;
  /** Power the VM off when the guest ignores the shutdown request. */
  forceStop?: boolean;
  /** Before a VM is stopped: the cluster layer drains its Kubernetes node here. */
  beforeStop?: (vm: { vmid: number; node: string }) => Promise<void>;
  /** After it runs again: the cluster layer uncordons here. */
  afterStart?: (vm: { vmid: number; node: string }) => Promise<void>;
  taskTimeoutMs?: number;
  /** One line per action, for the CLI's progress. */
  progress?: (line: string) => void;
}

export interface VmApplyResult {
  changed: number[];
  /** Lines saying what was done, in order. */
  log: string[];
}

export function privilegesFor(change: VmChange): Privilege[] {
  const needs = Object.entries(change.set).flatMap(([key, value]) =>
    configPrivileges(change.vmid, key, value),
  );
  if (change.efidisk) needs.push(...configPrivileges(change.vmid, 'efidisk0', change.efidisk));
  if (change.wasRunning) needs.push({ path: `/vms/${change.vmid}`, privilege: 'VM.PowerMgmt' });
  return needs;
}

export async function applyVmPlan(
  api: ProxmoxApi,
  plan: VmPlan,
  options: VmApplyOptions = {},
): Promise<VmApplyResult> {
  if (plan.refused) {
    const check = plan.checks.find((c) => c.status === 'fail');
    throw new IgpuSplitError(`the VM plan cannot be applied: ${plan.refused}`, {
      target: api.target,
      fix: check?.fix,
    });
  }
  for (const change of plan.changes) {
    const step = change.steps.find((s) => s.consent && !options.consents?.includes(s.consent));
    if (step) {
      throw new IgpuSplitError(`${step.description}: needs your consent`, {
        target: step.target,
        fix: `rerun with ${step.consent} after reading the plan's reason`,
      });
    }
  }
  await api.requirePrivileges(plan.changes.flatMap(privilegesFor));
  const result: VmApplyResult = { changed: [], log: [] };
  const say = (line: string) => {
    result.log.push(line);
    options.progress?.(line);
  };
  for (const change of plan.changes) {
    await applyOne(api, change, options, say);
    result.changed.push(change.vmid);
  }
  return result;
}

async function applyOne(
  api: ProxmoxApi,
  change: VmChange,
  options: VmApplyOptions,
  say: (line: string) => void,
): Promise<void> {
  const { vmid, node } = change;
  const timeout = options.taskTimeoutMs ?? 300_000;
  const fresh = await api.vmConfig(node, vmid);
  if (fresh.digest !== change.digest) {
    throw new TargetError(`VM ${vmid}'s config changed since the plan was made`, {
      target: `VM ${vmid} on ${node}`,
      fix: 'run plan again and review it',
    });
  }
  if (change.wasRunning) {
    await options.beforeStop?.({ vmid, node });
    await shutdown(api, change, options, timeout);
    say(`VM ${vmid}: stopped`);
  }
  const restore = undoFor(fresh.values, change);
  try {
    await api.updateVmConfig(node, vmid, { set: change.set, digest: fresh.digest }, timeout);
    if (change.efidisk) {
      await api.updateVmConfig(node, vmid, { set: {}, delete: ['efidisk0'] }, timeout);
      await api.updateVmConfig(node, vmid, { set: { efidisk0: change.efidisk } }, timeout);
    }
    say(
      `VM ${vmid}: config changed (${Object.keys(change.set)
        .filter((k) => k !== 'description')
        .join(', ')}${change.efidisk ? ', efidisk0' : ''})`,
    );
    if (change.wasRunning) {
      await api.waitTask(await api.vmPower(node, vmid, 'start'), timeout);
      say(`VM ${vmid}: running with its vGPU`);
      await options.afterStart?.({ vmid, node });
    }
  } catch (error) {
    // Put back what we changed (a recreated EFI disk stays: the old one is unusedN) and
    // start the VM again if it was running.
    const notes: string[] = [];
    try {
      await api.updateVmConfig(node, vmid, restore, timeout);
      notes.push('its config was restored');
      if (change.wasRunning && (await api.vmStatus(node, vmid)).status === 'stopped') {
        await api.waitTask(await api.vmPower(node, vmid, 'start'), timeout);
        notes.push('it runs again without a vGPU');
      }
    } catch (undoError) {
      notes.push(`restoring failed too (${(undoError as Error).message}); it may be stopped`);
    }
    const reason = error instanceof IgpuSplitError ? error.message : String(error);
    throw new TargetError(`VM ${vmid}: ${reason}; ${notes.join(', ')}`, {
      target: `VM ${vmid} on ${node}`,
      fix:
        error instanceof IgpuSplitError && error.fix
          ? error.fix
          : 'read the task log on the node, then run plan again',
      cause: error,
    });
  }
}

async function shutdown(api: ProxmoxApi, change: VmChange, options: VmApplyOptions, timeout: number) {
  const seconds = options.shutdownTimeoutSeconds ?? 180;
  try {
    await api.waitTask(
      await api.vmPower(change.node, change.vmid, 'shutdown', {
        timeout: seconds,
        ...(options.forceStop ? { forceStop: 1 } : {}),
      }),
      Math.max(timeout, (seconds + 30) * 1000),
    );
  } catch (error) {
    throw new TargetError(
      `VM ${change.vmid} did not shut down within ${seconds} s: ${(error as Error).message}`,
      {
        target: `VM ${change.vmid} on ${change.node}`,
        fix: 'check the guest answers ACPI shutdown (qemu-guest-agent or acpid); or rerun with --force-stop to power it off after the timeout',
        cause: error,
      },
    );
  }
}

/** The config call that puts back the values a change replaces. */
function undoFor(
  before: Record<string, string>,
  change: VmChange,
): { set: Record<string, string>; delete: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const key of Object.keys(change.set)) {
    if (before[key] === undefined) remove.push(key);
    else set[key] = before[key];
  }
  return { set, delete: remove };
}

/**
 * Rollback: for each VM whose description carries our marker, remove the hostpci we
 * added (or put back the one we changed), the machine type and EFI disk we replaced,
 * and the marker itself — stopping and restarting the VM around it when it runs.
 */
export async function rollbackVms(
  api: ProxmoxApi,
  vms: readonly { vmid: number; node: string }[],
  options: VmApplyOptions = {},
): Promise<VmApplyResult> {
  const result: VmApplyResult = { changed: [], log: [] };
  const timeout = options.taskTimeoutMs ?? 300_000;
  for (const { vmid, node } of vms) {
    const config = await api.vmConfig(node, vmid);
    const marker = readMarker(config.values.description);
    if (!marker) continue;
    const { set, remove } = undoMarker(config.values, marker);
    const running = (await api.vmStatus(node, vmid)).status === 'running';
    const change: VmChange = {
      vmid,
      node,
      wasRunning: running,
      digest: config.digest,
      set,
      marker,
      steps: [],
    };
    await api.requirePrivileges(privilegesFor(change));
    if (running) {
      await options.beforeStop?.({ vmid, node });
      await shutdown(api, change, options, timeout);
    }
    await api.updateVmConfig(node, vmid, { set, delete: remove, digest: config.digest }, timeout);
    if (marker.efidisk0) {
      // Ours becomes unusedN; the original volume (unusedN since apply) is attached again
      // with its old options — Proxmox drops it from the unused list itself. Deleting an
      // unusedN would destroy the volume, so we never do.
      await api.updateVmConfig(node, vmid, { set: {}, delete: ['efidisk0'] }, timeout);
      await api.updateVmConfig(node, vmid, { set: { efidisk0: marker.efidisk0 } }, timeout);
    }
    if (running) {
      await api.waitTask(await api.vmPower(node, vmid, 'start'), timeout);
      await options.afterStart?.({ vmid, node });
    }
    const line = `VM ${vmid}: ${marker.was ? `${marker.key} put back` : `${marker.key} removed`}${marker.machine !== undefined ? ', machine put back' : ''}${marker.efidisk0 ? ', original EFI disk put back' : ''}`;
    result.log.push(line);
    options.progress?.(line);
    result.changed.push(vmid);
  }
  return result;
}

function undoMarker(
  values: Record<string, string>,
  marker: VmMarker,
): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  if (marker.was) set[marker.key] = marker.was;
  else if (values[marker.key] !== undefined) remove.push(marker.key);
  if (marker.machine !== undefined) {
    if (marker.machine === '') remove.push('machine');
    else set.machine = marker.machine;
  }
  const description = withMarker(values.description, undefined);
  if (description) set.description = description;
  else remove.push('description');
  return { set, remove };
}
