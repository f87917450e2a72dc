// The kernel guard in an Ubuntu guest that carries i915-sriov-dkms (issue 17): the same hook
// and settings as on a Proxmox host (src/linux/kernel-guard/script.ts), pinning through GRUB_DEFAULT
// in a drop-in, since a guest has no proxmox-boot-tool. Here: the plan's steps that write
// the two files, what rollback removes, what gather reads, and the checks verify shows.
//
// Decisions:
// - Only the i915-sriov-dkms route gets a guard: it is the one guest route with an
//   out-of-tree module. A guest on upstream xe (or a GVT-g mdev) runs Ubuntu's own modules.
// - The settings are written before the hooks, the hook before dkms last (it runs the other): a kernel installed between the two steps
//   (unattended-upgrades does not wait for us) finds either no hook, or a hook with its
//   settings, never a hook that stops to say its settings are missing.
// - Unattended-upgrades installs kernels where nobody reads apt's output, so the guard's
//   record is read by verify for this node (guardChecks in ubuntuChecks).

import { createTwoFilesPatch } from 'diff';
import type { HostAccess } from '../../access/host.ts';
import { fileDiff } from '../../core/diff.ts';
import { TargetError } from '../../core/errors.ts';
import type { Check } from '../../core/model.ts';
import { guardChecks } from '../../linux/kernel-guard/checks.ts';
import type { GuardSpec } from '../../linux/kernel-guard/requirements.ts';
import {
  DEFAULT_MAX_PIN_DAYS,
  GUEST_PIN_DROPIN,
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_STATE,
  kernelGuardAheadScript,
  kernelGuardConfig,
  kernelGuardScript,
} from '../../linux/kernel-guard/script.ts';
import { byKernelVersion, type KernelGuardFacts } from '../../linux/kernel-guard/state.ts';
import { parseDpkgUnfinished } from '../../linux/parse/dpkg.ts';
import type { VfAttachment } from '../provider.ts';
import type { UbuntuStep } from './sriov.ts';

/** What a guest's kernels must have: the DKMS module built for them (messages name Ubuntu's packages). */
export const GUEST_GUARD_SPEC: GuardSpec = { mode: 'sriov', route: 'i915-sriov-dkms' };

/** The lab's kernelGuard settings when the attachment carries none: not strict, 30 days. */
export const DEFAULT_GUARD_SETTINGS = { strict: false, maxPinDays: DEFAULT_MAX_PIN_DAYS } as const;

/** What gather reads for the guard in a guest. */
export interface UbuntuGuardFacts {
  /** The guard's files and the kernel packages dpkg has not finished configuring. */
  files: KernelGuardFacts;
  /** Kernels with an image in /boot (what the guard judges), oldest first. */
  installed: string[];
  /** The guard's pin drop-in (GRUB_DEFAULT), when it is there. */
  pinDropin: string | undefined;
}

/** A guest carries the out-of-tree module, and so wants the guard, on the DKMS route only. */
export const wantsGuard = (attachment: VfAttachment) => attachment.route === 'i915-sriov-dkms';

/** The files of the guard, settings first (see the decisions above). */
export function guardFiles(attachment: VfAttachment): { path: string; content: string; mode: number }[] {
  const settings = attachment.kernelGuard ?? DEFAULT_GUARD_SETTINGS;
  return [
    {
      path: KERNEL_GUARD_CONF,
      content: kernelGuardConfig({
        spec: GUEST_GUARD_SPEC,
        strict: settings.strict,
        pinWith: 'grub-default',
        maxPinDays: settings.maxPinDays,
      }),
      mode: 0o644,
    },
    { path: KERNEL_GUARD_HOOK, content: kernelGuardScript(GUEST_GUARD_SPEC, 'ubuntu'), mode: 0o755 },
    // Last: it runs the hook above.
    { path: KERNEL_GUARD_AHEAD, content: kernelGuardAheadScript(), mode: 0o755 },
  ];
}

/** The steps that write the guard's files that do not hold what they should (none when they do). */
export function guardSteps(guard: UbuntuGuardFacts, attachment: VfAttachment, target: string): UbuntuStep[] {
  const held: Record<string, string | undefined> = {
    [KERNEL_GUARD_CONF]: guard.files.conf,
    [KERNEL_GUARD_HOOK]: guard.files.hook,
    [KERNEL_GUARD_AHEAD]: guard.files.ahead,
  };
  return guardFiles(attachment)
    .filter((file) => held[file.path] !== file.content)
    .map((file) => {
      const before = held[file.path];
      const hook = file.path === KERNEL_GUARD_HOOK;
      const ahead = file.path === KERNEL_GUARD_AHEAD;
      return {
        id: `guest/${target}/${hook ? 'guard-hook' : ahead ? 'guard-ahead' : 'guard-conf'}`,
        target,
        description: hook
          ? `${before === undefined ? 'install' : 'rewrite'} the kernel guard ${file.path}: after dkms, each new kernel is checked for i915 from i915-sriov-dkms, and the last kernel that has it stays the GRUB default (${GUEST_PIN_DROPIN})`
          : ahead
            ? `${before === undefined ? 'install' : 'rewrite'} the kernel guard's part before dkms ${file.path}: the last good kernel stays the default while a new kernel's module is built`
            : `${before === undefined ? 'write' : 'rewrite'} the kernel guard's settings ${file.path}`,
        diff: fileDiff(file.path, before ?? '', file.content),
        disturbs: [],
        action: { kind: 'write', path: file.path, content: file.content, mode: file.mode },
      };
    });
}

/** Every file the guard leaves in a guest, for rollback: its own two, its record and its pin. */
export const GUARD_PATHS = [
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_STATE,
  GUEST_PIN_DROPIN,
] as const;

/**
 * The command that removes the guard's files that are there, hook first (a kernel installed
 * meanwhile finds no half-removed guard), then update-grub when its pin was one of them:
 * GRUB_DEFAULT goes back to what the guest had.
 */
export function guardRemovalCommand(present: readonly string[]): { command: string; refreshed: string[] } {
  const refreshed = present.includes(GUEST_PIN_DROPIN) ? ['update-grub'] : [];
  const ordered = GUARD_PATHS.filter((p) => present.includes(p));
  return { command: [`rm -f ${ordered.join(' ')}`, ...refreshed].join(' && '), refreshed };
}

/** The files of the guard a guest has, as gathered, with what they hold. */
function presentFiles(guard: UbuntuGuardFacts): [path: string, content: string][] {
  const held: [string, string | undefined][] = [
    [KERNEL_GUARD_AHEAD, guard.files.ahead],
    [KERNEL_GUARD_HOOK, guard.files.hook],
    [KERNEL_GUARD_CONF, guard.files.conf],
    [KERNEL_GUARD_STATE, guard.files.state],
    [GUEST_PIN_DROPIN, guard.pinDropin],
  ];
  return held.filter((file): file is [string, string] => file[1] !== undefined);
}

/** A step removing a guard this guest no longer wants (its route is not the DKMS one now), or none. */
export function guardRemoval(guard: UbuntuGuardFacts, target: string): UbuntuStep[] {
  const present = presentFiles(guard);
  if (present.length === 0) return [];
  const { command } = guardRemovalCommand(present.map(([path]) => path));
  return [
    {
      id: `guest/${target}/guard-remove`,
      target,
      description: `remove the kernel guard (${present.map(([path]) => path).join(', ')}): this guest no longer carries i915-sriov-dkms, so its kernels need no check for it`,
      diff: present
        .filter(([path]) => path !== KERNEL_GUARD_STATE)
        .map(([path, before]) => createTwoFilesPatch(`a${path}`, '/dev/null', before, ''))
        .join(''),
      disturbs: [],
      command,
      action: { kind: 'run', command, timeoutMs: 300_000 },
    },
  ];
}

/** The kernel a GRUB_DEFAULT drop-in selects: `gnulinux-<kernel>-advanced-<id>`, alone or after its submenu's id. */
export function pinnedKernelOf(dropin: string | undefined): string | undefined {
  if (dropin === undefined) return undefined;
  let value: string | undefined;
  for (const line of dropin.split('\n')) {
    const match = /^\s*GRUB_DEFAULT=["']?([^"'\n]*)["']?\s*$/.exec(line);
    if (match) value = match[1];
  }
  const entry = value?.split('>').pop() ?? '';
  return /^gnulinux-(.+)-advanced-/.exec(entry)?.[1];
}

/** Kernel packages of Ubuntu (linux-image-<release>, and the linux-image-generic meta package). */
const GUEST_KERNEL_PACKAGES = ['linux-image-'] as const;

/**
 * The guard's files, the pin drop-in, the kernels in /boot and the kernel packages dpkg left
 * unfinished. `status` is /var/lib/dpkg/status, read already by the guest's gather.
 */
export async function gatherGuestGuard(
  read: (path: string) => Promise<string | undefined>,
  boot: readonly { name: string }[],
  status: string | undefined,
  moduleTrees: readonly string[],
): Promise<UbuntuGuardFacts> {
  const readAt = new Date().toISOString();
  const [hook, ahead, conf, state, pinDropin] = await Promise.all(
    [KERNEL_GUARD_HOOK, KERNEL_GUARD_AHEAD, KERNEL_GUARD_CONF, KERNEL_GUARD_STATE, GUEST_PIN_DROPIN].map(
      read,
    ),
  );
  const images = boot
    .map((entry) => /^vmlinuz-(.+)$/.exec(entry.name)?.[1])
    .filter((k): k is string => k !== undefined)
    .sort(byKernelVersion);
  return {
    files: {
      hook,
      ahead,
      conf,
      state,
      readAt,
      unconfigured: parseDpkgUnfinished(status ?? '', GUEST_KERNEL_PACKAGES),
      // The drop-in's date is in the guard's record; a tree read as files offers no mtime.
      pinWritten: {},
    },
    // A tree without /boot images (a capture that left /boot out): its module trees stand in.
    installed: images.length > 0 ? images : [...moduleTrees],
    pinDropin,
  };
}

/** What verify and plan say about the guard of a guest on a VF. */
export function guestGuardChecks(guard: UbuntuGuardFacts, attachment: VfAttachment): Check[] {
  return guardChecks({
    guard: guard.files,
    installed: guard.installed,
    pinned: pinnedKernelOf(guard.pinDropin),
    // GRUB's one-time choice (grub-reboot) is not the guard's way in a guest.
    nextBootPin: undefined,
    wanted: wantsGuard(attachment),
    unpin: `rm ${GUEST_PIN_DROPIN}; update-grub`,
    ...(attachment.kernelGuard ? { maxPinDays: attachment.kernelGuard.maxPinDays } : {}),
  });
}

/**
 * Rollback of the guard in a guest: removes its hook, settings, record and pin drop-in (what
 * is there, read afresh), then update-grub when the pin was one of them. `asRoot` wraps a
 * command for a login that is not root (asked only when there is something to remove).
 */
export async function rollbackGuestGuard(
  guest: HostAccess,
  asRoot: (command: string) => Promise<string>,
): Promise<{ removed: string[]; refreshed: string[] }> {
  const present = (
    await Promise.all(GUARD_PATHS.map(async (path) => ((await guest.entryType(path)) ? path : undefined)))
  ).filter((p): p is (typeof GUARD_PATHS)[number] => p !== undefined);
  if (present.length === 0) return { removed: [], refreshed: [] };
  const { command, refreshed } = guardRemovalCommand(present);
  const result = await guest.run(await asRoot(command), { timeoutMs: 300_000 });
  if (result.code !== 0)
    throw new TargetError(
      `removing the kernel guard failed (exit ${result.code}): ${(result.stderr || result.stdout).trim().split('\n')[0] ?? ''}`,
      { target: guest.target, fix: `run ${command} on the guest as root` },
    );
  return { removed: present, refreshed };
}
