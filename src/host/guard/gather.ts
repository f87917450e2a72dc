// Reading the kernel guard's files, the kernel packages dpkg has not finished, and when the
// pin files were written (a command, only where the access runs commands).

import { type HostAccess, HostError } from '../../access/host.ts';
import {
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_STATE,
} from '../../linux/kernel-guard/script.ts';
import { type KernelGuardFacts, NO_GUARD_FACTS } from '../../linux/kernel-guard/state.ts';
import { parseDpkgUnfinished } from '../../linux/parse/dpkg.ts';
import { PATHS } from '../../linux/paths.ts';
import type { Read } from '../../linux/read.ts';

/** Kernel packages of Proxmox VE 8/9 (proxmox-kernel-*, pve-kernel-* before), Debian and Ubuntu (linux-image-*). */
export const KERNEL_PACKAGE_PREFIXES = ['proxmox-kernel-', 'pve-kernel-', 'linux-image-'] as const;

/** `stat -c '%Y %n'`: seconds since the epoch and the name, per pin file that exists. */
export const PIN_DATES_COMMAND = `stat -c '%Y %n' ${PATHS.kernelPin} ${PATHS.kernelNextBootPin} 2>/dev/null; true`;

export async function gatherKernelGuard(
  host: HostAccess,
  read: Read,
  /** The check hook as gather read it (undefined: not installed). */
  hook: string | undefined,
  pins: { pinned: string | undefined; nextBootPin: string | undefined },
): Promise<KernelGuardFacts> {
  // Nothing to report or age: the facts of such a host are the same at every read.
  if (hook === undefined && pins.pinned === undefined && pins.nextBootPin === undefined)
    return NO_GUARD_FACTS;
  const readAt = new Date().toISOString();
  const [ahead, conf, state, status, pinWritten] = await Promise.all([
    read(KERNEL_GUARD_AHEAD),
    read(KERNEL_GUARD_CONF),
    read(KERNEL_GUARD_STATE),
    read(PATHS.dpkgStatus),
    pinDates(host, pins),
  ]);
  return {
    hook,
    ahead,
    conf,
    state,
    readAt,
    unconfigured: parseDpkgUnfinished(status ?? '', KERNEL_PACKAGE_PREFIXES),
    pinWritten,
  };
}

async function pinDates(
  host: HostAccess,
  pins: { pinned: string | undefined; nextBootPin: string | undefined },
): Promise<KernelGuardFacts['pinWritten']> {
  if (pins.pinned === undefined && pins.nextBootPin === undefined) return {};
  let stdout: string;
  try {
    const result = await host.run(PIN_DATES_COMMAND, { timeoutMs: 10_000 });
    if (result.code !== 0) return {};
    stdout = result.stdout;
  } catch (error) {
    // expected: HostError (EUNSUPPORTED on a captured tree) — the dates are unknown
    if (error instanceof HostError) return {};
    throw error;
  }
  const dates: KernelGuardFacts['pinWritten'] = {};
  for (const line of stdout.split('\n')) {
    const match = /^(\d+) (\S+)$/.exec(line.trim());
    if (!match) continue;
    const at = new Date(Number(match[1]) * 1000).toISOString();
    if (match[2] === PATHS.kernelPin) dates.pin = at;
    if (match[2] === PATHS.kernelNextBootPin) dates.nextBoot = at;
  }
  return dates;
}
