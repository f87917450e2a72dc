// The kernel guard in a host plan: its settings and its two hooks written whole, each with its diff,
// re-written when the mode, route or the lab's kernelGuard settings change.

import { fileDiff } from '../../core/diff.ts';
import { HOST_TOOL } from '../../knowledge/packages.ts';
import type { GuardSpec } from '../../linux/kernel-guard/requirements.ts';
import {
  DEFAULT_MAX_PIN_DAYS,
  describeSpec,
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  kernelGuardAheadScript,
  kernelGuardConfig,
  kernelGuardScript,
} from '../../linux/kernel-guard/script.ts';
import type { GuardRecord } from '../../linux/kernel-guard/state.ts';
import type { HostFacts } from '../facts.ts';
import type { HostStep } from '../plan.ts';
import { type RouteChoice, routeGuardSpec } from '../sriov/route.ts';

/** What the guard checks on a host of this mode (and SR-IOV route). */
export function hostGuardSpec(mode: string, route: RouteChoice | undefined): GuardSpec | undefined {
  if (mode === 'gvt-g') return { mode: 'gvt-g' };
  if (mode === 'passthrough') return { mode: 'passthrough' };
  return mode === 'sriov' && route ? routeGuardSpec(route) : undefined;
}

export function guardSteps(
  facts: HostFacts,
  spec: GuardSpec,
  lab: { strict: boolean; maxPinDays: number } | undefined,
): HostStep[] {
  const settings = kernelGuardConfig({
    spec,
    strict: lab?.strict ?? false,
    pinWith: 'proxmox-boot-tool',
    maxPinDays: lab?.maxPinDays ?? DEFAULT_MAX_PIN_DAYS,
  });
  const script = kernelGuardScript(spec);
  const target = facts.target;
  const steps: HostStep[] = [];
  const write = (
    id: string,
    path: string,
    current: string | undefined,
    wanted: string,
    mode: number,
    what: string,
  ) => {
    if (current === wanted) return;
    steps.push({
      id: `host/${target}/${id}`,
      target,
      description: `${path}: ${what}`,
      diff: fileDiff(path, current ?? '', wanted),
      write: { path, content: wanted, mode },
      disturbs: [],
    });
  };
  write(
    'kernel-guard-settings',
    KERNEL_GUARD_CONF,
    facts.kernelGuard.conf,
    settings,
    0o644,
    `settings of the kernel guard (${describeSpec(spec)}${lab?.strict ? ', strict' : ''})`,
  );
  write(
    'kernel-guard',
    KERNEL_GUARD_HOOK,
    facts.kernelGuard.hook,
    script,
    0o755,
    'the kernel guard: every new kernel is checked after dkms, and the last good one pinned if it breaks the split',
  );
  // Written last: it runs the hook above.
  write(
    'kernel-guard-ahead',
    KERNEL_GUARD_AHEAD,
    facts.kernelGuard.ahead,
    kernelGuardAheadScript(),
    0o755,
    'the kernel guard before dkms: the last good kernel stays the default while a new kernel’s module is built',
  );
  return steps;
}

/** A kernel release as it may go into a command (what `uname -r` prints: no shell words). */
const KERNEL_RELEASE = /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/;

/**
 * Rollback: release the guard's own pin, if it still holds (a pin someone changed since is
 * theirs), keeping anyone else's next-boot pin; `proxmox-boot-tool kernel unpin` removes both
 * pin files (src/bin/proxmox-boot-tool unpin_kernel @ 7007b33c). The commands, in order.
 */
export function releasePinCommands(
  record: GuardRecord | undefined,
  pins: { pinned: string | undefined; nextBootPin: string | undefined },
): string[] {
  const pin = record?.pin;
  if (!pin || !KERNEL_RELEASE.test(pin.kernel)) return [];
  const tool = HOST_TOOL.proxmoxBootTool;
  if (pin.kind === 'next-boot')
    return pins.nextBootPin === pin.kernel ? [`${tool} kernel unpin --next-boot`] : [];
  if (pins.pinned !== pin.kernel) return [];
  const keep = pins.nextBootPin;
  return [
    `${tool} kernel unpin`,
    ...(keep && KERNEL_RELEASE.test(keep) ? [`${tool} kernel pin ${keep} --next-boot`] : []),
  ];
}
