// Doctor's and verify's view of the kernel guard, on a host or in a guest: installed or not,
// the last kernel it checked, kernels installed that would break the split, and a pin in force
// with its age. Pins hold back security fixes (pve-docs system-booting.adoc @ 027bbe9 asks to
// unpin soon), so a pin is a warning from the first newer kernel it holds back and a failure
// once it is older than max_pin_days (30 unless the lab says otherwise).

import type { Check } from '../../core/model.ts';
import { DEFAULT_MAX_PIN_DAYS, KERNEL_GUARD_CONF, KERNEL_GUARD_HOOK } from './script.ts';
import {
  byKernelVersion,
  type GuardRecord,
  type KernelGuardFacts,
  parseGuardRecord,
  parseGuardSettings,
} from './state.ts';

export interface GuardContext {
  guard: KernelGuardFacts;
  /** Installed kernel releases. */
  installed: string[];
  /** The pin in force (proxmox-boot-tool's, or the guest's GRUB_DEFAULT drop-in), and the next-boot pin. */
  pinned: string | undefined;
  nextBootPin: string | undefined;
  /** The machine's split needs a guard (igpu-split set it up here). */
  wanted: boolean;
  /** The lab's pin age limit; else the guard's settings', else 30 days. */
  maxPinDays?: number;
  /** How a pin is released here (default: proxmox-boot-tool's). */
  unpin?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export function guardChecks(context: GuardContext): Check[] {
  const { guard } = context;
  if (guard.hook === undefined) {
    if (!context.wanted) return [];
    return [
      {
        id: 'guard.installed',
        status: 'warn',
        evidence: `the kernel guard is not installed (${KERNEL_GUARD_HOOK}): a kernel upgrade can break the GPU split unnoticed`,
        fix: 'igpu-split apply installs it',
      },
    ];
  }
  if (guard.conf === undefined)
    return [
      {
        id: 'guard.installed',
        status: 'fail',
        evidence: `the kernel guard has no settings (${KERNEL_GUARD_CONF} is missing), so it checks no kernel`,
        fix: 'igpu-split apply writes them again',
      },
    ];
  const settings = parseGuardSettings(guard.conf);
  const checks: Check[] = [
    {
      id: 'guard.installed',
      status: 'pass',
      evidence: `kernel guard installed (${settings.mode ?? 'mode unknown'}; ${settings.strict ? 'strict: a breaking kernel fails its configure step' : 'a breaking kernel is installed and the last good one pinned'})`,
    },
  ];
  const record = guard.state === undefined ? undefined : parseGuardRecord(guard.state);
  checks.push(lastCheck(guard, record));
  const pending = pendingCheck(context, record);
  if (pending) checks.push(pending);
  const pin = pinCheck(context, record, context.maxPinDays ?? settings.maxPinDays ?? DEFAULT_MAX_PIN_DAYS);
  if (pin) checks.push(pin);
  return checks;
}

function lastCheck(guard: KernelGuardFacts, record: GuardRecord | undefined): Check {
  if (guard.state === undefined)
    return {
      id: 'guard.last-check',
      status: 'pass',
      evidence: 'no kernel has been installed since the guard was (nothing checked yet)',
    };
  if (record === undefined)
    return {
      id: 'guard.last-check',
      status: 'warn',
      evidence:
        'the guard’s record (/var/lib/igpu-split/kernel-guard.state) is not in a form igpu-split reads',
      fix: `run ${KERNEL_GUARD_HOOK} $(uname -r) on the machine to record a fresh verdict`,
    };
  const at = `kernel ${record.checkedKernel} (checked ${record.checkedAt})`;
  if (record.verdict === 'keeps')
    return { id: 'guard.last-check', status: 'pass', evidence: `${at} keeps the GPU split` };
  if (record.verdict === 'pending')
    return {
      id: 'guard.last-check',
      status: 'warn',
      evidence: `kernel ${record.checkedKernel} was installed (${record.checkedAt}) but its hooks stopped before the check after its module build; the guard had pinned ${record.boots} ahead, which boots`,
      fix: `read apt's error (dkms status; /var/lib/dkms/*/build/make.log), fix it, then dpkg --configure -a, or remove kernel ${record.checkedKernel}`,
    };
  const outcome: Record<string, { status: Check['status']; after: string }> = {
    pinned: { status: 'warn', after: `the guard pinned ${record.boots}, which boots instead` },
    pinning: {
      status: 'fail',
      after: `the guard stopped while pinning ${record.boots} (interrupted?); whether the pin took is not recorded`,
    },
    'next-boot-pinned': {
      status: 'warn',
      after: `someone else's pin selects it; the guard set the next boot to ${record.boots}`,
    },
    'not-default': { status: 'warn', after: `it does not boot next (${record.boots} does)` },
    'user-pin': {
      status: 'fail',
      after: `a next-boot pin someone else set boots ${record.boots}, which breaks the split`,
    },
    'no-good-kernel': {
      status: 'fail',
      after: 'no installed kernel keeps the split, so nothing could be pinned',
    },
    'pin-failed': {
      status: 'fail',
      after: 'the guard could not pin a good kernel and stopped the kernel’s configure step',
    },
    refused: {
      status: 'fail',
      after: 'strict mode stopped the kernel’s configure step (its package is half-configured)',
    },
  };
  const known = outcome[record.action] ?? { status: 'warn' as const, after: `action ${record.action}` };
  const recover =
    record.action === 'refused' || record.action === 'pin-failed'
      ? '; then dpkg --configure -a, or remove that kernel'
      : `; then run ${KERNEL_GUARD_HOOK} ${record.checkedKernel} to check again`;
  return {
    id: 'guard.last-check',
    status: known.status,
    evidence: `${at} breaks the GPU split: ${record.why}; ${known.after}`,
    fix: `${record.fix}${recover}`,
  };
}

/** Kernels installed that would break the split, or that the guard never saw (their hooks stopped before it). */
function pendingCheck(context: GuardContext, record: GuardRecord | undefined): Check | undefined {
  const unconfigured = context.guard.unconfigured;
  if (unconfigured.length > 0)
    return {
      id: 'guard.pending',
      status: 'fail',
      evidence: `${unconfigured.map((u) => `${u.package} is ${u.status}`).join('; ')}: its kernel hooks did not finish (a dkms build that failed, or strict mode), so its initramfs and boot entry may be missing`,
      fix: 'fix the cause (dkms status; the apt output), then dpkg --configure -a, or remove that kernel package',
    };
  if (record === undefined) return undefined;
  // A kernel pinned ahead of its build was judged before it: not a verdict on it.
  const breaking = context.installed.filter(
    (k) => record.kernels[k] === 'breaks' && !(record.verdict === 'pending' && k === record.checkedKernel),
  );
  const unseen = context.installed.filter(
    (k) => record.kernels[k] === undefined && byKernelVersion(k, record.checkedKernel) > 0,
  );
  if (unseen.length > 0)
    return {
      id: 'guard.pending',
      status: 'warn',
      evidence: `kernel ${unseen.join(', ')} is installed but the guard has no verdict on it (its hooks did not reach the guard)`,
      fix: `run ${KERNEL_GUARD_HOOK} ${unseen.at(-1)} on the machine`,
    };
  if (breaking.length === 0) return undefined;
  return {
    id: 'guard.pending',
    status: 'warn',
    evidence: `installed kernel${breaking.length > 1 ? 's' : ''} ${breaking.join(', ')} would boot without the GPU split (the guard's verdict)`,
    fix: `do not boot ${breaking.length > 1 ? 'them' : 'it'} (a pin keeps the good kernel); ${record.fix || 'igpu-split doctor says why'}`,
  };
}

/** A pin in force: its kernel, since when, and what it holds back. */
function pinCheck(
  context: GuardContext,
  record: GuardRecord | undefined,
  maxDays: number,
): Check | undefined {
  const kernel = context.nextBootPin ?? context.pinned;
  if (kernel === undefined) return undefined;
  const ours = record?.pin !== undefined && record.pin.kernel === kernel;
  const written =
    context.nextBootPin !== undefined ? context.guard.pinWritten.nextBoot : context.guard.pinWritten.pin;
  const since = ours ? record?.pin?.since : written;
  const newer = context.installed.filter((k) => byKernelVersion(k, kernel) > 0).sort(byKernelVersion);
  const who = ours ? 'by the igpu-split kernel guard' : 'not by igpu-split';
  const kind = context.nextBootPin !== undefined ? 'next boot pinned' : 'pinned';
  const days = since
    ? Math.floor((Date.parse(context.guard.readAt ?? new Date().toISOString()) - Date.parse(since)) / DAY_MS)
    : undefined;
  const age =
    days === undefined || Number.isNaN(days) ? 'since an unknown date' : `since ${since} (${days} days)`;
  const evidence = `${kind} to ${kernel} ${who}, ${age}`;
  if (newer.length === 0)
    return { id: 'guard.pin', status: 'pass', evidence: `${evidence}; no newer kernel is held back` };
  const heldBack = `${newer.length} newer kernel${newer.length > 1 ? 's' : ''} held back (${newer.join(', ')}): their security fixes wait`;
  const fix = ours
    ? `make the newest kernel keep the split (${record?.fix || 'see guard.last-check'}), then run ${KERNEL_GUARD_HOOK} ${newer.at(-1)}: it releases the pin`
    : `unpin when a newer kernel keeps the split (${context.unpin ?? 'proxmox-boot-tool kernel unpin'})`;
  if (days !== undefined && !Number.isNaN(days) && days > maxDays)
    return {
      id: 'guard.pin',
      status: 'fail',
      evidence: `${evidence}, longer than ${maxDays} days; ${heldBack}`,
      fix,
    };
  return { id: 'guard.pin', status: 'warn', evidence: `${evidence}; ${heldBack}`, fix };
}
