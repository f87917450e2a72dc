// Applying the VM plan one VM at a time (so a cluster loses at most one node at once):
// privileges checked up front for every VM, then per VM — the config re-read and compared
// with the digest the plan was made from, graceful shutdown (the cluster layer drains
// first through a hook) and a wait until the VM is really stopped, one config change
// guarded by the digest, the EFI disk recreated when consented, start and wait. When a
// step fails, what was written is put back (only while it still holds our values) and a
// VM that was running is started again, so we never leave one stopped without saying so.

import { IgpuSplitError, RefusedError, TargetError } from '../core/errors.ts';
import type { Privilege, ProxmoxApi } from '../proxmox/api.ts';
import { configPrivileges } from '../proxmox/api-spec.ts';
import { notesProblem, readMarker, type VmChange, type VmMarker, type VmPlan, withMarker } from './plan.ts';

export interface VmApplyOptions {
  /** Options the user gave, matched against steps' `consents`. */
  consents?: readonly string[];
  shutdownTimeoutSeconds?: number;
  /** Power the VM off when the guest ignores the shutdown request. */
  forceStop?: boolean;
  /** Before a VM is stopped: the cluster layer drains its Kubernetes node here. */
  beforeStop?: (vm: VmRef) => Promise<void>;
  /** After it runs again (or when stopping it failed): the cluster layer uncordons here. */
  afterStart?: (vm: VmRef) => Promise<void>;
  taskTimeoutMs?: number;
  /** One line per action, for the CLI's progress. */
  progress?: (line: string) => void;
  /** Rollback: the caller ran checkRollbackNotes over these VMs already (each line is read again before its VM changes). */
  notesChecked?: boolean;
  /** Where the VMs we stop are kept until they run again (the engine's journal). */
  stops?: StopRecord;
  /** Rollback: the VF pool mapping, whose `mapping=<pool>,pcie=1` lines igpu-split writes (and so removes). */
  vfPool?: string;
}

/** The VMs our runs stopped and have not started yet: an interrupted run's stops are the next run's to undo. */
export interface StopRecord {
  stoppedVms(): readonly number[];
  markStopped(vmid: number, stopped: boolean): Promise<void>;
}

export interface VmRef {
  vmid: number;
  node: string;
}

export interface VmApplyResult {
  changed: number[];
  /** Lines saying what was done, in order. */
  log: string[];
}

interface ConfigCall {
  set: Record<string, string>;
  delete: string[];
}

function privileges(
  vmid: number,
  call: ConfigCall,
  efidisk: string | undefined,
  power: boolean,
): Privilege[] {
  const needs = [
    ...Object.entries(call.set).flatMap(([key, value]) => configPrivileges(vmid, key, value)),
    ...call.delete.flatMap((key) => configPrivileges(vmid, key)),
  ];
  if (efidisk) needs.push(...configPrivileges(vmid, 'efidisk0', efidisk));
  if (power) needs.push({ path: `/vms/${vmid}`, privilege: 'VM.PowerMgmt' });
  return needs;
}

/** Every privilege applying the plan needs, for all its VMs. */
export function vmPlanPrivileges(plan: VmPlan): Privilege[] {
  return plan.changes.flatMap((c) => privileges(c.vmid, { set: c.set, delete: [] }, c.efidisk, c.wasRunning));
}

export async function applyVmPlan(
  api: ProxmoxApi,
  plan: VmPlan,
  options: VmApplyOptions = {},
): Promise<VmApplyResult> {
  if (plan.refused) {
    const check = plan.checks.find((c) => c.status === 'fail');
    throw new RefusedError(`the VM plan cannot be applied: ${plan.refused}`, {
      target: api.target,
      fix: check?.fix,
    });
  }
  for (const change of plan.changes) {
    for (const step of change.steps) {
      const missing = (step.consents ?? []).filter((c) => !options.consents?.includes(c));
      if (missing.length === 0) continue;
      throw new RefusedError(`${step.description}: needs your consent`, {
        target: step.target,
        fix: `rerun with ${missing.join(' ')} after reading the plan's reason`,
      });
    }
  }
  await api.requirePrivileges(vmPlanPrivileges(plan));
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

/** Drain hook, shutdown, and a wait until the VM is stopped; on failure the drain is undone. */
async function stopVm(api: ProxmoxApi, vm: VmRef, options: VmApplyOptions, timeout: number): Promise<void> {
  await options.beforeStop?.(vm);
  const seconds = options.shutdownTimeoutSeconds ?? 180;
  try {
    const upid = await api.vmPower(vm.node, vm.vmid, 'shutdown', {
      timeout: seconds,
      ...(options.forceStop ? { forceStop: 1 } : {}),
    });
    await api.waitTask(upid, Math.max(timeout, (seconds + 30) * 1000));
    // An HA-managed VM's task only files the request: wait for the VM itself.
    await api.waitStatus(vm.node, vm.vmid, 'stopped', (seconds + 30) * 1000);
  } catch (error) {
    // expected: any failure to shut down — the drain is undone and it is rethrown as a TargetError
    await options.afterStart?.(vm);
    throw new TargetError(
      `VM ${vm.vmid} did not shut down within ${seconds} s: ${(error as Error).message}`,
      {
        target: `VM ${vm.vmid} on ${vm.node}`,
        fix: 'check the guest answers ACPI shutdown (qemu-guest-agent or acpid); or rerun with --force-stop to power it off after the timeout',
        cause: error,
      },
    );
  }
}

async function startVm(api: ProxmoxApi, vm: VmRef, timeout: number): Promise<void> {
  await api.waitTask(await api.vmPower(vm.node, vm.vmid, 'start'), timeout);
}

/** Recreate or restore efidisk0: the current one becomes unusedN, `value` is attached. */
async function replaceEfiDisk(api: ProxmoxApi, vm: VmRef, value: string, timeout: number): Promise<void> {
  if ((await api.vmConfig(vm.node, vm.vmid)).values.efidisk0 !== undefined)
    await api.updateVmConfig(vm.node, vm.vmid, { set: {}, delete: ['efidisk0'] }, timeout);
  await api.updateVmConfig(vm.node, vm.vmid, { set: { efidisk0: value } }, timeout);
}

async function applyOne(
  api: ProxmoxApi,
  change: VmChange,
  options: VmApplyOptions,
  say: (line: string) => void,
): Promise<void> {
  const vm = { vmid: change.vmid, node: change.node };
  const timeout = options.taskTimeoutMs ?? 300_000;
  const fresh = await api.vmConfig(vm.node, vm.vmid);
  if (fresh.digest !== change.digest) {
    throw new TargetError(`VM ${vm.vmid}'s config changed since the plan was made`, {
      target: `VM ${vm.vmid} on ${vm.node}`,
      fix: 'run plan again and review it',
    });
  }
  // What counts is the power state now, not at plan time — or that an interrupted run
  // of ours stopped it.
  const runningNow = (await api.vmStatus(vm.node, vm.vmid)).status === 'running';
  const running = runningNow || options.stops?.stoppedVms().includes(vm.vmid) === true;
  if (runningNow) {
    await options.stops?.markStopped(vm.vmid, true);
    await stopVm(api, vm, options, timeout);
    say(`VM ${vm.vmid}: stopped`);
  }
  let written = false;
  let efiTouched = false;
  try {
    await api.updateVmConfig(vm.node, vm.vmid, { set: change.set, digest: fresh.digest }, timeout);
    written = true;
    if (change.efidisk) {
      efiTouched = true;
      await replaceEfiDisk(api, vm, change.efidisk, timeout);
    }
    say(
      `VM ${vm.vmid}: config changed (${Object.keys(change.set)
        .filter((k) => k !== 'description')
        .join(', ')}${change.efidisk ? ', efidisk0' : ''})`,
    );
    if (running) {
      await startVm(api, vm, timeout);
      say(`VM ${vm.vmid}: running with its vGPU`);
    }
  } catch (error) {
    // expected: any failure — what was written is put back, then it is rethrown as a TargetError
    const notes = await putBack(api, vm, fresh.values, change, { written, efiTouched, running, timeout });
    // expected: any status read failure — the VM is then not known to run, so the record that we stopped it stays for the next run
    const status = await api.vmStatus(vm.node, vm.vmid).catch(() => undefined);
    if (running && status?.status === 'running') await options.stops?.markStopped(vm.vmid, false);
    if (running) await options.afterStart?.(vm);
    const reason = error instanceof IgpuSplitError ? error.message : String(error);
    throw new TargetError(`VM ${vm.vmid}: ${reason}; ${notes.join(', ')}`, {
      target: `VM ${vm.vmid} on ${vm.node}`,
      fix:
        error instanceof IgpuSplitError && error.fix
          ? error.fix
          : 'read the task log on the node, then run plan again',
      cause: error,
    });
  }
  // Outside the try: a failure to record the start must not undo a change that worked.
  if (running) await options.stops?.markStopped(vm.vmid, false);
  if (running) await options.afterStart?.(vm);
}

/**
 * After a failed apply: the EFI disk and the values we set go back to what they were —
 * values only while they still hold ours (someone else's edit in the meantime is kept,
 * and said) — and a VM that was running is started again.
 */
async function putBack(
  api: ProxmoxApi,
  vm: VmRef,
  before: Record<string, string>,
  change: VmChange,
  state: { written: boolean; efiTouched: boolean; running: boolean; timeout: number },
): Promise<string[]> {
  const notes: string[] = [];
  try {
    if (state.efiTouched && before.efidisk0 !== undefined)
      await replaceEfiDisk(api, vm, before.efidisk0, state.timeout);
    if (state.written) {
      const now = await api.vmConfig(vm.node, vm.vmid);
      const ours = Object.keys(change.set).filter((key) => now.values[key] === change.set[key]);
      const call: ConfigCall = { set: {}, delete: [] };
      for (const key of ours) {
        if (before[key] === undefined) call.delete.push(key);
        else call.set[key] = before[key];
      }
      await api.updateVmConfig(vm.node, vm.vmid, { ...call, digest: now.digest }, state.timeout);
      notes.push(
        ours.length === Object.keys(change.set).length
          ? 'its config was restored'
          : `its config was restored except ${Object.keys(change.set)
              .filter((k) => !ours.includes(k))
              .join(', ')} (changed by someone else meanwhile)`,
      );
    } else {
      notes.push('its config was not changed');
    }
  } catch (undoError) {
    // expected: any failure — said in the notes on the error being reported
    notes.push(`restoring failed too (${(undoError as Error).message})`);
  }
  if (state.running) notes.push(await startAgain(api, vm, state.timeout));
  return notes;
}

/** After a failure: starts a VM that was running before, and says whether it runs. */
async function startAgain(api: ProxmoxApi, vm: VmRef, timeout: number): Promise<string> {
  try {
    if ((await api.vmStatus(vm.node, vm.vmid)).status === 'stopped') await startVm(api, vm, timeout);
    return 'it runs again';
  } catch (startError) {
    // expected: any failure — the VM stays stopped, and the note on the original error says so in capitals
    return `it is STOPPED: starting it again failed (${(startError as Error).message})`;
  }
}

/**
 * Every VM's igpu-split line is checked before anything is rolled back (the whole-lab
 * rollback calls this before it touches the cluster): one refused line stops them all.
 */
export async function checkRollbackNotes(
  api: ProxmoxApi,
  vms: readonly VmRef[],
  vfPool?: string,
): Promise<void> {
  for (const vm of vms) {
    const problem = notesProblem((await api.vmConfig(vm.node, vm.vmid)).values, vfPool);
    if (problem)
      throw new RefusedError(
        `VM ${vm.vmid}: the igpu-split line in its notes ${problem}: nothing was rolled back`,
        {
          target: `VM ${vm.vmid} on ${vm.node}`,
          fix: 'the line may have been edited by someone who may edit the notes: undo the change by hand (qm set), then remove the igpu-split line from the notes',
        },
      );
  }
}

/**
 * Rollback: for each VM whose description carries our marker, put back the EFI disk,
 * remove the hostpci we added (or restore the one we changed) and the machine type, and
 * last remove the marker — so a rollback that fails half-way can be run again. A running
 * VM is stopped around it and started again whatever happens.
 */
export async function rollbackVms(
  api: ProxmoxApi,
  vms: readonly VmRef[],
  options: VmApplyOptions = {},
): Promise<VmApplyResult> {
  const result: VmApplyResult = { changed: [], log: [] };
  const timeout = options.taskTimeoutMs ?? 300_000;
  if (!options.notesChecked) await checkRollbackNotes(api, vms, options.vfPool);
  for (const vm of vms) {
    const line = await rollbackOne(api, vm, options, timeout);
    if (line === undefined) continue;
    result.log.push(line);
    options.progress?.(line);
    result.changed.push(vm.vmid);
  }
  return result;
}

/** Rolls one VM back; the line saying what was put back, or undefined when it carries no marker. */
async function rollbackOne(
  api: ProxmoxApi,
  vm: VmRef,
  options: VmApplyOptions,
  timeout: number,
): Promise<string | undefined> {
  const config = await api.vmConfig(vm.node, vm.vmid);
  // Checked again as read now: the notes may have changed since the check above.
  const problem = notesProblem(config.values, options.vfPool);
  if (problem)
    throw new RefusedError(
      `VM ${vm.vmid}: the igpu-split line in its notes ${problem}: it was not rolled back`,
      {
        target: `VM ${vm.vmid} on ${vm.node}`,
        fix: 'the line changed while rollback ran: check the VM by hand, then run rollback again',
      },
    );
  const marker = readMarker(config.values.description);
  if (!marker) return undefined;
  const call = undoMarker(config.values, marker);
  const description = withMarker(config.values.description, undefined);
  const running = (await api.vmStatus(vm.node, vm.vmid)).status === 'running';
  await api.requirePrivileges([
    ...privileges(vm.vmid, call, marker.efidisk0, running),
    ...configPrivileges(vm.vmid, 'description'),
  ]);
  if (running) await stopVm(api, vm, options, timeout);
  try {
    if (marker.efidisk0) await replaceEfiDisk(api, vm, marker.efidisk0, timeout);
    const now = await api.vmConfig(vm.node, vm.vmid);
    await api.updateVmConfig(vm.node, vm.vmid, { ...call, digest: now.digest }, timeout);
    await api.updateVmConfig(
      vm.node,
      vm.vmid,
      description ? { set: { description } } : { set: {}, delete: ['description'] },
      timeout,
    );
    if (running) await startVm(api, vm, timeout);
  } catch (error) {
    // expected: any failure — rethrown as a TargetError after the VM is started again
    const notes: string[] = [];
    if (running) {
      notes.push(await startAgain(api, vm, timeout));
      await options.afterStart?.(vm);
    }
    throw new TargetError(
      `VM ${vm.vmid}: rollback failed: ${(error as Error).message}${notes.length ? `; ${notes.join(', ')}` : ''}`,
      {
        target: `VM ${vm.vmid} on ${vm.node}`,
        fix: 'fix the cause and run rollback again (the igpu-split line in the VM notes is kept until it succeeds)',
        cause: error,
      },
    );
  }
  if (running) await options.afterStart?.(vm);
  return rolledBackLine(vm, marker);
}

function rolledBackLine(vm: VmRef, marker: VmMarker): string {
  const what = marker.was ? `${marker.key} put back` : `${marker.key} removed`;
  const machine = marker.machine !== undefined ? ', machine put back' : '';
  const efi = marker.efidisk0 ? ', original EFI disk put back' : '';
  return `VM ${vm.vmid}: ${what}${machine}${efi}`;
}

function undoMarker(values: Record<string, string>, marker: VmMarker): ConfigCall {
  const call: ConfigCall = { set: {}, delete: [] };
  if (marker.was) call.set[marker.key] = marker.was;
  else if (values[marker.key] !== undefined) call.delete.push(marker.key);
  if (marker.machine !== undefined) {
    if (marker.machine === '') call.delete.push('machine');
    else call.set.machine = marker.machine;
  }
  return call;
}
