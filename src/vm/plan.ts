// The VM layer's plan: for each node VM, the checks (machine q35 without vIOMMU, OVMF,
// Secure Boot keys, what is already on the iGPU) and the config change that gives it a
// vGPU — `hostpciN: mapping=<name>,mdev=<type>,pcie=1` on the first free index, or the
// raw address for a root@pam session without a mapping — plus the stop and start it
// needs. `vgpu: auto` picks, per Proxmox node, the largest type every VM there fits.

import { z } from 'zod';
import type { SriovHost } from '../config/derived.ts';
import type { Check, LayerPlan, Step } from '../core/model.ts';
import { clip, counted } from '../core/text.ts';
import { EFIDISK, HOSTPCI, HOSTPCI_KEY, MACHINE } from '../proxmox/api-spec.ts';
import {
  formatPropertyString,
  PropertyStringError,
  type PropertyValues,
  parsePropertyString,
} from '../proxmox/property-string.ts';
import type { DesiredVm, VmFacts, VmLayerFacts } from './gather.ts';
import { afterRelease, checkMdevType, chooseMdevType, type HostHints } from './mdev-type.ts';
import { isVfPoolValue, vfNodeCheck, vfRefusal } from './vf.ts';

/** The `type` planOne gets for a VM attached by VF: no mdev type, the pool hands out a whole VF. */
export const VF = 'vf';

/** qemu-server allows hostpci0 … hostpci15 (PVE/QemuServer/PCI.pm, MAX_HOSTPCI_DEVICES). */
export const MAX_HOSTPCI = 16;
/** The line in a VM's description that records what igpu-split changed, for rollback. */
export const MARKER = 'igpu-split: ';
/**
 * The notes line's format, its `format` key. 1: what igpu-split wrote before the key existed
 * (d5cfd90 and earlier, which also did not record `machineSet`); 2: the same record with
 * `format`. Every format up to ours is read; a newer one is refused, not overwritten.
 */
export const MARKER_FORMAT = 2;

export interface VmPlanOptions {
  /** The cluster mapping to attach through; undefined = raw PCI address (root@pam session only). */
  mapping?: string;
  /** Who calls the API: a token can never attach a raw address, even root@pam's. */
  identity: { user: string; token?: string };
  /** Consent to change the machine type (q35, vIOMMU off). */
  changeMachine?: boolean;
  /** Consent to recreate the EFI disk without pre-enrolled keys (Secure Boot off). */
  resetEfiKeys?: boolean;
  /** The mapping does not exist yet but the mapping layer will create it first. */
  mappingPlanned?: boolean;
  /** Per Proxmox node, what the host layer knows (for the aperture suggestion). */
  hostHints?: Record<string, HostHints>;
  /** The VF pool mapping (`sriov.mapping`) the VMs with `attach: 'vf'` go through. */
  vfPool?: string;
  /** Per SR-IOV host, the VFs the host plan makes (its pool entries). */
  vfHosts?: Record<string, SriovHost>;
}

/** What rollback needs to undo, stored in the VM's description. */
export interface VmMarker {
  /** The hostpci key we added, or changed (then `was` holds its old value). */
  key: string;
  was?: string;
  /** The machine value before apply changed it ('' when the VM had none); with `machineSet`, what apply set. */
  machine?: string;
  machineSet?: string;
  efidisk0?: string;
}

export interface VmChange {
  vmid: number;
  node: string;
  wasRunning: boolean;
  digest: string;
  /** The config values to set (hostpci, machine, description), one call. */
  set: Record<string, string>;
  /** Recreate the EFI disk: delete it (it stays as unusedN) and allocate this one. */
  efidisk?: string;
  marker: VmMarker;
  steps: Step[];
}

/** `steps` are every change's steps, in order; apply works VM by VM from `changes`. */
export interface VmPlan extends LayerPlan {
  changes: VmChange[];
  /** The VMs that ran when the plan was made (a host reboot must not leave them off). */
  running: number[];
  /** The mdev type chosen for each Proxmox node. */
  types: Record<string, string>;
}

export const SECURE_BOOT_TRADE =
  'recreates the EFI disk with pre-enrolled-keys=0: Secure Boot off in the guest, and the NVRAM is reset ' +
  '(boot entries and firmware settings; the old disk is kept as unusedN). With Secure Boot on, kernels and ' +
  'modules not signed by the enrolled keys are refused — the standard (non-Secure-Boot) Talos installer that ' +
  'the guest layer uses does not boot and DKMS-built modules do not load';

/** A hostpci value that points at the iGPU: our mapping, or its raw address. */
function onIgpu(value: PropertyValues, mapping: string | undefined, bdf: string): boolean {
  if (value.mapping !== undefined) return value.mapping === mapping;
  // `00:02`, `00:02.0`, `0000:00:02.0`: with no function, the whole device (all functions);
  // `;` separates alternatives.
  const full = (id: string) => (/^[0-9a-f]{4,}:/i.test(id) ? id : `0000:${id}`).toLowerCase();
  return String(value.host ?? '')
    .split(';')
    .some((id) => {
      const host = full(id);
      return host === bdf.toLowerCase() || `${host}.0` === bdf.toLowerCase();
    });
}

/**
 * What is wrong with a VM's notes line, as a check: rollback would refuse the VM (`warn`),
 * or a later igpu-split wrote it (`fail`: apply would replace what that one recorded).
 */
function notesCheck(vm: VmFacts, vfPool?: string): Check[] {
  const read = readNotesLine(vm.config.values.description);
  if (read && 'newer' in read)
    return [
      {
        id: `vm.${vm.vmid}.notes`,
        status: 'fail',
        evidence: `VM ${vm.vmid}: the igpu-split line in its notes ${read.damage}`,
        fix: 'plan, apply and roll back this lab with the igpu-split that wrote it (or a newer one)',
      },
    ];
  const notes = notesProblem(vm.config.values, vfPool);
  if (!notes) return [];
  return [
    {
      id: `vm.${vm.vmid}.notes`,
      status: 'warn',
      evidence: `VM ${vm.vmid}: the igpu-split line in its notes ${notes}; rollback refuses this VM`,
      fix: 'someone may have edited the line: undo what igpu-split changed by hand (qm set), then remove the line from the notes',
    },
  ];
}

export function planVms(facts: VmLayerFacts, desired: readonly DesiredVm[], options: VmPlanOptions): VmPlan {
  // Named first, whatever else the plan finds: rollback would refuse these VMs.
  const checks: Check[] = facts.vms.flatMap((vm) => notesCheck(vm, options.vfPool));
  const newer = checks.find((c) => c.status === 'fail');
  if (newer)
    return refuse(
      checks.filter((c) => c !== newer),
      newer,
    );
  const types: Record<string, string> = {};
  const raw = options.mapping === undefined;
  const rootSession = isRootSession(options);

  // Only VMs attached by mediated device go through the GVT-g mapping (or a raw address).
  const anyMdev = desired.some((vm) => vm.attach !== 'vf');
  if (anyMdev && raw && !rootSession) {
    return refuse(checks, {
      id: 'vm.attach',
      status: 'fail',
      evidence: `${describeIdentity(options)} cannot attach a raw PCI address (Proxmox allows that to a root@pam session only)`,
      fix: 'attach through the cluster mapping (mapping: iGPU, created by igpu-split mapping apply)',
    });
  }
  if (
    anyMdev &&
    !raw &&
    facts.mapping &&
    (!facts.mapping.exists || !facts.mapping.mdev) &&
    !options.mappingPlanned
  ) {
    return refuse(checks, {
      id: 'vm.mapping',
      status: 'fail',
      evidence: facts.mapping.exists
        ? `mapping ${options.mapping} is not marked for mediated devices (mdev=0)`
        : `cluster mapping ${options.mapping} does not exist`,
      fix: 'run igpu-split mapping apply first',
    });
  }

  // The vGPU type per node: VMs that already hold an instance of a type need no new one.
  const mdevVms = desired.filter((vm) => vm.attach !== 'vf');
  for (const node of new Set(mdevVms.map((vm) => vm.node))) {
    const chosen = chooseNodeType(node, facts, mdevVms, options);
    checks.push(chosen.check);
    if (chosen.type !== undefined) types[node] = chosen.type;
  }
  // SR-IOV hosts: one VF per VM, counted against what other VMs already hold.
  const vfVms = desired.filter((vm) => vm.attach === 'vf');
  for (const node of new Set(vfVms.map((vm) => vm.node)))
    checks.push(vfNodeCheck(node, facts, vfVms, options));

  const changes: VmChange[] = [];
  for (const vm of desired) {
    const current = facts.vms.find((f) => f.vmid === vm.vmid);
    const type = vm.attach === 'vf' ? VF : types[vm.node];
    const bdf = facts.nodes.find((n) => n.node === vm.node)?.gpu?.id;
    if (!current || !type || !bdf) continue;
    const refusal = vm.attach === 'vf' ? vfRefusal(vm, current, options) : undefined;
    if (refusal) {
      checks.push(refusal);
      continue;
    }
    const change = planOne(current, type, bdf, options, checks);
    if (change) changes.push(change);
  }
  const blocking = checks.find((c) => c.status === 'fail');
  const running = facts.vms.filter((vm) => vm.status === 'running').map((vm) => vm.vmid);
  const steps = changes.flatMap((change) => change.steps);
  return { checks, steps, changes, running, types, ...(blocking ? { refused: blocking.evidence } : {}) };
}

/** The vGPU type for the VMs on one Proxmox node, and the check that says why (or why none). */
function chooseNodeType(
  node: string,
  facts: VmLayerFacts,
  desired: readonly DesiredVm[],
  options: VmPlanOptions,
): { check: Check; type?: string } {
  const nodeFacts = facts.nodes.find((n) => n.node === node);
  if (!nodeFacts?.gpu) {
    return {
      check: {
        id: `vm.${node}.gpu`,
        status: 'fail',
        evidence: `Proxmox lists no Intel iGPU at 00:02.0 on ${node}`,
        fix: `run igpu-split doctor and host apply on ${node}`,
      },
    };
  }
  const onNode = desired.filter((vm) => vm.node === node);
  const need = (type: string) =>
    onNode.filter((vm) => {
      const current = facts.vms.find((f) => f.vmid === vm.vmid);
      return !(
        current?.status === 'running' && heldType(current, options.mapping, nodeFacts.gpu?.id ?? '') === type
      );
    }).length;
  const named = [...new Set(onNode.map((vm) => vm.vgpu).filter((t) => t !== 'auto'))];
  if (named.length > 1 || (named.length === 1 && onNode.some((vm) => vm.vgpu === 'auto'))) {
    return {
      check: {
        id: `vm.${node}.vgpu`,
        status: 'fail',
        evidence: `VMs on ${node} ask for different vGPU types (${[...new Set(onNode.map((vm) => vm.vgpu))].join(', ')})`,
        fix: 'give every VM on one host the same type, or auto (mixed GVT-g types share the aperture unevenly)',
      },
    };
  }
  // Running VMs that change type give their instance back when we stop them.
  const held = onNode
    .map((vm) => facts.vms.find((f) => f.vmid === vm.vmid))
    .filter((f): f is VmFacts => f?.status === 'running')
    .map((f) => heldType(f, options.mapping, nodeFacts.gpu?.id ?? ''))
    .filter((t): t is string => t !== undefined);
  const live = nodeFacts.types.map((t) => ({
    ...t,
    available:
      afterRelease(
        nodeFacts.types,
        held.filter((h) => h !== t.type),
      ).find((a) => a.type === t.type)?.available ?? t.available,
  }));
  const hints = options.hostHints?.[node];
  const choice =
    named.length === 1
      ? checkMdevType(live, named[0] as string, need, hints)
      : chooseMdevType(live, need, hints);
  if (!choice.ok) {
    return {
      check: {
        id: `vm.${node}.vgpu`,
        status: 'fail',
        evidence: `${node}: ${choice.reason}`,
        fix: choice.suggestions.join('; or '),
      },
    };
  }
  return {
    type: choice.type,
    check: {
      id: `vm.${node}.vgpu`,
      status: 'pass',
      evidence: `${node}: ${choice.type} for ${counted(onNode.length, 'VM')}, ${choice.available} free`,
    },
  };
}

/**
 * The machine value apply sets for a VM whose machine is `current`, or undefined when it
 * needs none: pcie=1 needs q35, and a guest vIOMMU in front of a mediated device is not
 * supported. Rollback uses it too, to tell a change apply made from one it never would.
 */
export function machineFor(current: string | undefined): string | undefined {
  const machine = parsePropertyString(current ?? 'pc', MACHINE);
  const type = String(machine.type ?? 'pc');
  const q35 = /q35/.test(type);
  if (q35 && machine.viommu === undefined) return undefined;
  const next: PropertyValues = { ...machine, type: q35 ? type : 'q35' };
  delete next.viommu;
  return formatPropertyString(next, MACHINE);
}

/**
 * A machine value Proxmox takes: the official API schema (pve-docs api-viewer apidata.js,
 * as ../shared/data/pve-apidata.js, git blob 4aa6a8fccd77e64e8573dc98b6a852326ae6a035),
 * POST /nodes/{node}/qemu/{vmid}/config, parameter `machine`: key `type` with this pattern
 * (matched whole, as pve-common src/PVE/JSONSchema.pm at f665029e does: m/^$pattern$/) and
 * maxLength 40, `viommu` one of intel, virtio.
 */
const MACHINE_TYPE =
  /^(?:pc|pc(-i440fx)?-\d+(\.\d+)+(\+pve\d+)?(\.pxe)?|q35|pc-q35-\d+(\.\d+)+(\+pve\d+)?(\.pxe)?|virt(?:-\d+(\.\d+)+)?(\+pve\d+)?)$/;
const VIOMMU = ['intel', 'virtio'];

function isMachineValue(value: string): boolean {
  try {
    const parsed = parsePropertyString(value, MACHINE);
    const type = String(parsed.type ?? 'pc');
    return (
      type.length <= 40 &&
      MACHINE_TYPE.test(type) &&
      (parsed.viommu === undefined || VIOMMU.includes(String(parsed.viommu)))
    );
  } catch (error) {
    // expected: PropertyStringError — a value that does not parse is no machine value; anything else is rethrown
    if (!(error instanceof PropertyStringError)) throw error;
    return false;
  }
}

const isVgpu = (value: string, vfPool?: string) => {
  try {
    return typeof parsePropertyString(value, HOSTPCI).mdev === 'string' || isVfPoolValue(value, vfPool);
  } catch (error) {
    // expected: PropertyStringError — a value that does not parse holds no vGPU; anything else is rethrown
    if (!(error instanceof PropertyStringError)) throw error;
    return false;
  }
};

/**
 * Why the notes line cannot be what igpu-split wrote for this VM, or undefined. Anyone
 * allowed to edit a VM's notes can write that line, and rollback runs with the token's
 * wider privileges, so it acts only on what igpu-split itself could have done: the key is
 * a hostpci key holding a vGPU (or nothing), what it puts back is a vGPU (apply replaces
 * only those, never a whole passthrough), a machine type is put back only where apply
 * recorded the change it made (`machine` → `machineSet`, a change apply makes from that
 * value, and the VM still has what apply set), and the EFI disk it puts back is the one
 * apply kept as one of this VM's unusedN entries.
 */
export function markerProblem(
  values: Record<string, string>,
  marker: VmMarker,
  vfPool?: string,
): string | undefined {
  if (!HOSTPCI_KEY.test(marker.key)) return `names ${clip(marker.key, 40)}, which igpu-split never changes`;
  const now = values[marker.key];
  if (now !== undefined && !isVgpu(now, vfPool)) return `names ${marker.key}, which holds no vGPU now`;
  if (marker.was !== undefined && !isVgpu(marker.was, vfPool))
    return `would put back on ${marker.key} what is no vGPU`;
  if (marker.machine !== undefined || marker.machineSet !== undefined) {
    if (marker.machine === undefined || marker.machineSet === undefined)
      return 'names a machine type without the change igpu-split made (from one value to another): edited';
    if (marker.machine !== '' && !isMachineValue(marker.machine))
      return 'would put back a machine type that is not one';
    if (machineFor(marker.machine || undefined) !== marker.machineSet)
      return 'names a machine change igpu-split never makes';
    if (values.machine !== marker.machineSet)
      return `would put back the machine type, but the VM's machine is no longer the one igpu-split set (${clip(marker.machineSet, 60)})`;
  }
  if (marker.efidisk0 !== undefined) {
    let file: unknown;
    try {
      file = parsePropertyString(marker.efidisk0, EFIDISK).file;
    } catch {
      // expected: PropertyStringError — not an EFI disk value: a problem of the line, said.
      return 'would put back an EFI disk that is not one';
    }
    const kept = Object.entries(values).some(
      ([key, value]) => /^unused\d+$/.test(key) && value.split(',')[0] === file,
    );
    if (!kept) return "would put back an EFI disk that is not among this VM's unused disks";
  }
  return undefined;
}

function isRootSession(options: VmPlanOptions): boolean {
  return options.identity.user === 'root@pam' && !options.identity.token;
}

function refuse(checks: Check[], check: Check): VmPlan {
  checks.push(check);
  return { checks, steps: [], changes: [], running: [], types: {}, refused: check.evidence };
}

function describeIdentity(options: VmPlanOptions): string {
  return options.identity.token
    ? `API token ${options.identity.user}!${options.identity.token}`
    : options.identity.user;
}

/** The mdev type a VM's config already puts on the iGPU, if any. */
function heldType(vm: VmFacts, mapping: string | undefined, bdf: string): string | undefined {
  for (const [key, value] of Object.entries(vm.config.values)) {
    if (!HOSTPCI_KEY.test(key)) continue;
    const parsed = parsePropertyString(value, HOSTPCI);
    if (onIgpu(parsed, mapping, bdf) && typeof parsed.mdev === 'string') return parsed.mdev;
  }
  return undefined;
}

function planOne(
  vm: VmFacts,
  type: string,
  bdf: string,
  options: VmPlanOptions,
  checks: Check[],
): VmChange | undefined {
  const config = vm.config.values;
  const machine = machinePlan(vm, options);
  const secureBoot = secureBootPlan(vm, options);
  checks.push(machine.check, biosCheck(vm), ...(secureBoot.check ? [secureBoot.check] : []));
  const machineChange = machine.change;
  const efidisk = secureBoot.efidisk;

  const want = formatPropertyString(
    type === VF
      ? { mapping: options.vfPool as string, pcie: true }
      : options.mapping === undefined
        ? { host: bdf, mdev: type, pcie: true }
        : { mapping: options.mapping, mdev: type, pcie: true },
    HOSTPCI,
  );
  const slot = hostpciSlot(vm, bdf, want, options);
  if ('refusal' in slot) {
    checks.push(slot.refusal);
    return undefined;
  }
  const { key } = slot;
  const set: Record<string, string> = { ...slot.set };
  const marker = nextMarker(config, slot, machineChange, efidisk);
  checks.push({
    id: `vm.${vm.vmid}.hostpci`,
    status: 'pass',
    evidence: set[key] ? `VM ${vm.vmid}: ${key} gets ${want}` : `VM ${vm.vmid}: ${key} already has ${want}`,
  });
  if (machineChange) set.machine = machineChange;
  if (Object.keys(set).length === 0 && !efidisk) return undefined;
  set.description = withMarker(config.description, marker);

  const diff = [
    ...(machineChange
      ? [`- machine: ${config.machine ?? '(default: pc, i440fx)'}`, `+ machine: ${machineChange}`]
      : []),
    ...slot.diff,
    ...(efidisk ? [`- efidisk0: ${config.efidisk0} (kept as unusedN)`, `+ efidisk0: ${efidisk}`] : []),
  ];
  const steps = changeSteps(vm, { type, set, diff: diff.join('\n'), machineChange, efidisk });
  if (vm.status !== 'running') checks.push(stoppedCheck(vm));
  return {
    vmid: vm.vmid,
    node: vm.node,
    wasRunning: vm.status === 'running',
    digest: vm.config.digest,
    set,
    efidisk,
    marker,
    steps,
  };
}

/** The machine check, and the machine value apply sets (undefined when q35 without vIOMMU already). */
function machinePlan(vm: VmFacts, options: VmPlanOptions): { check: Check; change: string | undefined } {
  const id = `vm.${vm.vmid}.machine`;
  const config = vm.config.values;
  const machine = parsePropertyString(config.machine ?? 'pc', MACHINE);
  const machineType = String(machine.type ?? 'pc');
  const change = machineFor(config.machine);
  if (change === undefined)
    return {
      change,
      check: { id, status: 'pass', evidence: `VM ${vm.vmid}: machine ${machineType}, no vIOMMU` },
    };
  const why = [
    ...(/q35/.test(machineType)
      ? []
      : [`machine ${machineType} is i440fx; the vGPU is attached as PCIe, which needs q35`]),
    ...(machine.viommu !== undefined
      ? [`a guest vIOMMU (${machine.viommu}) is not supported in front of a mediated device`]
      : []),
  ].join('; ');
  return {
    change,
    check: {
      id,
      status: options.changeMachine ? 'warn' : 'fail',
      evidence: `VM ${vm.vmid}: ${why}`,
      fix: options.changeMachine
        ? `machine becomes ${change}; the guest sees new PCI addresses (network interface names may change)`
        : `rerun with --change-machine to set machine: ${change} (the guest's PCI addresses change; interface names may too)`,
    },
  };
}

function biosCheck(vm: VmFacts): Check {
  const id = `vm.${vm.vmid}.bios`;
  const bios = vm.config.values.bios ?? 'seabios';
  if (bios === 'ovmf') return { id, status: 'pass', evidence: `VM ${vm.vmid}: OVMF (UEFI)` };
  return {
    id,
    status: 'warn',
    evidence: `VM ${vm.vmid}: ${bios} firmware; igpu-split is built and tested for OVMF guests`,
    fix: 'render-only use works without it; switching an installed guest to OVMF needs an EFI system partition in the guest first, so igpu-split does not change it',
  };
}

/**
 * Secure Boot: OVMF with Microsoft/distribution keys enrolled. The check (none without
 * an OVMF EFI disk) and, with consent, the EFI disk that replaces the one holding keys.
 */
function secureBootPlan(vm: VmFacts, options: VmPlanOptions): { check?: Check; efidisk?: string } {
  const id = `vm.${vm.vmid}.secure-boot`;
  const config = vm.config.values;
  if ((config.bios ?? 'seabios') !== 'ovmf' || !config.efidisk0) return {};
  const disk = parsePropertyString(config.efidisk0, EFIDISK);
  if (disk['pre-enrolled-keys'] !== true)
    return { check: { id, status: 'pass', evidence: `VM ${vm.vmid}: no pre-enrolled Secure Boot keys` } };
  if (!options.resetEfiKeys) {
    return {
      check: {
        id,
        status: 'fail',
        evidence: `VM ${vm.vmid}: efidisk0 has pre-enrolled-keys=1 (Secure Boot on in the guest)`,
        fix: `turn Secure Boot off in the VM's firmware setup (Device Manager → Secure Boot Configuration), or rerun with --reset-efi-keys, which ${SECURE_BOOT_TRADE}`,
      },
    };
  }
  const storage = String(disk.file).split(':')[0];
  const efidisk = formatPropertyString(
    { file: `${storage}:1`, efitype: String(disk.efitype ?? '4m'), 'pre-enrolled-keys': false },
    EFIDISK,
  );
  return {
    efidisk,
    check: {
      id,
      status: 'warn',
      evidence: `VM ${vm.vmid}: Secure Boot keys enrolled; --reset-efi-keys given`,
      fix: SECURE_BOOT_TRADE,
    },
  };
}

/** The hostpci key that carries the vGPU: the values to set, the old value replaced and the diff lines. */
interface HostpciSlot {
  key: string;
  set: Record<string, string>;
  was?: string;
  diff: string[];
}

/** Where the vGPU goes: the entry already on the iGPU, else the first free index; or why it cannot. */
function hostpciSlot(
  vm: VmFacts,
  bdf: string,
  want: string,
  options: VmPlanOptions,
): HostpciSlot | { refusal: Check } {
  const config = vm.config.values;
  const slot: HostpciSlot = { key: '', set: {}, diff: [] };
  const vf = isVfPoolValue(want, options.vfPool);
  for (const [name, value] of Object.entries(config)) {
    if (!HOSTPCI_KEY.test(name)) continue;
    const parsed = parsePropertyString(value, HOSTPCI);
    if (vf ? parsed.mapping !== options.vfPool : !onIgpu(parsed, options.mapping, bdf)) continue;
    const refusal = hostpciRefusal(vm, name, value, parsed, want, options);
    if (refusal) return { refusal };
    slot.key = name;
    if (value !== want) {
      slot.set[name] = want;
      slot.was = value;
      slot.diff.push(`- ${name}: ${value}`, `+ ${name}: ${want}`);
    }
  }
  if (slot.key) return slot;
  const free = Array.from({ length: MAX_HOSTPCI }, (_, i) => `hostpci${i}`).find(
    (k) => config[k] === undefined,
  );
  if (!free) {
    return {
      refusal: {
        id: `vm.${vm.vmid}.hostpci`,
        status: 'fail',
        evidence: `VM ${vm.vmid}: all ${MAX_HOSTPCI} hostpci slots are in use`,
        fix: 'free one',
      },
    };
  }
  return { key: free, set: { [free]: want }, diff: [`+ ${free}: ${want}`] };
}

/** Why an entry already on the iGPU cannot carry the vGPU, or undefined. */
function hostpciRefusal(
  vm: VmFacts,
  name: string,
  value: string,
  parsed: PropertyValues,
  want: string,
  options: VmPlanOptions,
): Check | undefined {
  const id = `vm.${vm.vmid}.hostpci`;
  if (parsed.mdev === undefined && !isVfPoolValue(value, options.vfPool)) {
    return {
      id,
      status: 'fail',
      evidence: `VM ${vm.vmid}: ${name}: ${value} passes the whole iGPU through; it cannot also be shared`,
      fix: `remove ${name} (qm set ${vm.vmid} --delete ${name}) or leave this VM out of the plan`,
    };
  }
  if (parsed.host !== undefined && value !== want && !isRootSession(options)) {
    // Proxmox checks the old value too: a raw address can only be changed by root@pam.
    return {
      id,
      status: 'fail',
      evidence: `VM ${vm.vmid}: ${name}: ${value} names the raw address; only a root@pam session may change it`,
      fix: `as root: qm set ${vm.vmid} --${name} ${want}`,
    };
  }
  return undefined;
}

/** The marker this apply writes: what it changes now, and what an earlier apply recorded as the user's. */
function nextMarker(
  config: Record<string, string>,
  slot: HostpciSlot,
  machineChange: string | undefined,
  efidisk: string | undefined,
): VmMarker {
  const marker: VmMarker = { key: slot.key };
  if (slot.was !== undefined) marker.was = slot.was;
  // A later apply (another type, say) keeps what the first one recorded as the user's.
  const earlier = readMarker(config.description);
  if (earlier?.key === slot.key) marker.was = earlier.was;
  if (earlier?.machine !== undefined) marker.machine = earlier.machine;
  if (earlier?.machineSet !== undefined) marker.machineSet = earlier.machineSet;
  if (earlier?.efidisk0 !== undefined) marker.efidisk0 = earlier.efidisk0;
  if (machineChange) {
    marker.machine ??= config.machine ?? '';
    marker.machineSet = machineChange;
  }
  if (efidisk) marker.efidisk0 ??= config.efidisk0;
  return marker;
}

/** Stop (when running), the one config call, start (when it was running). */
function changeSteps(
  vm: VmFacts,
  change: {
    type: string;
    set: Record<string, string>;
    diff: string;
    machineChange: string | undefined;
    efidisk: string | undefined;
  },
): Step[] {
  const { type, set, machineChange, efidisk } = change;
  const target = `VM ${vm.vmid} on ${vm.node}`;
  const prefix = `vm/${vm.vmid}`;
  const running = vm.status === 'running';
  const args = Object.entries(set)
    .filter(([k]) => k !== 'description')
    .map(([k, v]) => `--${k} ${v}`)
    .join(' ');
  const consents = [...(machineChange ? ['--change-machine'] : []), ...(efidisk ? ['--reset-efi-keys'] : [])];
  const config: Step = {
    id: `${prefix}/config`,
    target,
    description: `attach ${type === VF ? 'a virtual function' : `vGPU ${type}`} to VM ${vm.vmid}${machineChange ? `, machine ${machineChange}` : ''}${efidisk ? ', EFI disk without Secure Boot keys' : ''}`,
    diff: change.diff,
    disturbs: [],
    command: `qm set ${vm.vmid} ${args}${efidisk ? ` && qm set ${vm.vmid} --delete efidisk0 && qm set ${vm.vmid} --efidisk0 ${efidisk}` : ''}`,
    // Carried whether or not the option was given, so a library caller cannot skip it.
    ...(consents.length > 0 ? { consents } : {}),
  };
  if (!running) return [config];
  return [
    {
      id: `${prefix}/stop`,
      target,
      description: `shut down VM ${vm.vmid} (the config change needs it stopped)`,
      disturbs: ['node-drain', 'vm-restart'],
      command: `qm shutdown ${vm.vmid} --timeout 180`,
    },
    config,
    {
      id: `${prefix}/start`,
      target,
      description: `start VM ${vm.vmid} and wait until it runs (Proxmox creates the vGPU now)`,
      disturbs: [],
      command: `qm start ${vm.vmid}`,
    },
  ];
}

function stoppedCheck(vm: VmFacts): Check {
  return {
    id: `vm.${vm.vmid}.power`,
    status: 'warn',
    evidence: `VM ${vm.vmid} is stopped; apply changes its config and leaves it stopped`,
    fix: `start it (qm start ${vm.vmid}); Proxmox creates the vGPU then`,
  };
}

/** The description with our marker line replaced (rollback reads it back); the user's lines stay as they are. */
export function withMarker(description: string | undefined, marker: VmMarker | undefined): string {
  const lines = (description ?? '').split('\n');
  const at = lines.findIndex((line) => line.startsWith(MARKER));
  if (at >= 0) lines.splice(at, 1);
  const base = lines.join('\n');
  if (!marker) return base;
  const line = `${MARKER}${JSON.stringify({ format: MARKER_FORMAT, ...marker })}`;
  return base === '' ? line : `${base}\n${line}`;
}

/** The line's shape; what it says is checked against the VM before rollback acts on it. */
const MarkerSchema = z.object({
  format: z.int().min(1).optional(),
  key: z.string(),
  was: z.string().optional(),
  machine: z.string().optional(),
  machineSet: z.string().optional(),
  efidisk0: z.string().optional(),
});

/**
 * The notes line igpu-split wrote, or what is wrong with it (`newer`: a later igpu-split
 * wrote it); undefined when there is none.
 */
export function readNotesLine(
  description: string | undefined,
): { marker: VmMarker } | { damage: string; newer?: boolean } | undefined {
  const line = (description ?? '').split('\n').find((l) => l.startsWith(MARKER));
  if (!line) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(line.slice(MARKER.length));
  } catch {
    // expected: SyntaxError — not JSON: damaged, said.
    return { damage: 'is damaged (not JSON)' };
  }
  const format = (json as { format?: unknown } | null)?.format;
  if (typeof format === 'number' && format > MARKER_FORMAT)
    return {
      damage: `was written by a newer igpu-split ("format": ${format}; this one reads up to ${MARKER_FORMAT})`,
      newer: true,
    };
  const parsed = MarkerSchema.safeParse(json);
  if (parsed.success) return { marker: fromFormat1(parsed.data) };
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    return { damage: 'is damaged (not a JSON object)' };
  const field = String(parsed.error.issues[0]?.path[0] ?? 'key');
  const kind = field === 'format' ? 'a whole number' : 'text';
  return { damage: `is damaged (${clip(field, 40)} is ${field in json ? `not ${kind}` : 'missing'})` };
}

/**
 * A format-1 line that names a machine type without `machineSet` (d5cfd90 did not record
 * it): apply set `machineFor(machine)` then, as now, so that is what it set. This trusts
 * such a line exactly as far as a line carrying both values, and `markerProblem` still
 * checks the VM has that machine.
 */
function fromFormat1({ format, ...marker }: z.output<typeof MarkerSchema>): VmMarker {
  if (
    (format ?? 1) === 1 &&
    marker.machine !== undefined &&
    marker.machineSet === undefined &&
    (marker.machine === '' || isMachineValue(marker.machine))
  ) {
    const set = machineFor(marker.machine || undefined);
    if (set !== undefined) marker.machineSet = set;
  }
  return marker;
}

/** The notes line igpu-split wrote, or undefined when there is none (or it is damaged). */
export function readMarker(description: string | undefined): VmMarker | undefined {
  const read = readNotesLine(description);
  return read && 'marker' in read ? read.marker : undefined;
}

/** What rollback would refuse in a VM's notes line, or undefined (no line, or one it acts on). */
export function notesProblem(values: Record<string, string>, vfPool?: string): string | undefined {
  const read = readNotesLine(values.description);
  if (!read) return undefined;
  return 'damage' in read ? read.damage : markerProblem(values, read.marker, vfPool);
}
