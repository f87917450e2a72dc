// Which SR-IOV driver route a host takes, the kernel parameters it needs, and the one
// answer to "does kernel K keep the split on this host" (plan, apply and doctor; the kernel
// guard on the host checks the same requirements, src/linux/kernel-guard/requirements.ts).
//
// Decisions:
// - `auto` never picks an experimental route (SRIOV-FACTS §0: Tiger Lake, Meteor/Arrow Lake,
//   xe behind force_probe); `mode: sriov` opts in and takes the platform's first route.
// - Routes are taken in the order the platform table lists them: the i915-sriov-dkms route
//   first where both exist (Alder/Raptor Lake), since upstream xe gives those VFs only
//   behind force_probe on 6.18+.
// - The xe route on Panther/Wildcat Lake needs kernel 6.17+ (PTL's has_sriov without
//   force_probe, SRIOV-FACTS §1b); a forced xe route needs 6.18+ (TGL/ADL has_sriov).

import { buildsFor, describeRange, knownRelease } from '../../knowledge/i915-sriov-dkms.ts';
import type { IgpuPlatformInfo, SriovRoute } from '../../knowledge/igpu-platforms.ts';
import { MODULE, PARAM, SRIOV_PARAM } from '../../knowledge/kernel.ts';
import {
  type Requirement,
  type SriovGuardSpec,
  shortfall,
  splitRequirements,
} from '../../linux/kernel-guard/requirements.ts';
import type { HostFacts } from '../facts.ts';

export type RouteName = SriovRoute['route'];

export interface RouteChoice {
  route: RouteName;
  experimental: boolean;
  forceProbe: boolean;
  /** The driver that binds the PF and the VFs (module name). */
  driver: 'i915' | 'xe';
  note: string;
}

/** The route for a platform, or why there is none the lab allows. */
export function chooseRoute(
  platform: IgpuPlatformInfo,
  requested: 'auto' | 'sriov',
): RouteChoice | { refused: string } {
  const routes = platform.sriov;
  if (routes.length === 0)
    return { refused: `${platform.name} iGPUs have no SR-IOV: no driver sets has_sriov for them` };
  const allowed = requested === 'sriov' ? routes : routes.filter((r) => !r.experimental);
  const route = allowed[0];
  if (!route)
    return {
      refused: `${platform.name}: SR-IOV is experimental here (${routes.map((r) => r.note).join('; ')}); set mode: sriov on the host to opt in`,
    };
  return {
    route: route.route,
    experimental: route.experimental,
    forceProbe: route.forceProbe === true,
    driver: route.route === 'xe' ? 'xe' : 'i915',
    note: route.note,
  };
}

/** major.minor of a kernel release (6.17.2-1-pve → [6, 17]). */
export function kernelSeries(release: string): [number, number] | undefined {
  const match = /^(\d+)\.(\d+)/.exec(release);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

const atLeast = (release: string, major: number, minor: number) => {
  const series = kernelSeries(release);
  return series !== undefined && (series[0] > major || (series[0] === major && series[1] >= minor));
};

/**
 * The kernel the host boots next: proxmox-boot-tool's next-boot pin, else its pin, else
 * the newest installed kernel (what Proxmox's boot loader configuration puts first).
 */
export function nextBootKernel(facts: HostFacts): string | undefined {
  return (
    facts.kernels.nextBootPin ?? facts.kernels.pinned ?? facts.kernels.installed.at(-1) ?? facts.kernelRelease
  );
}

export type KernelVerdict = { ok: true; evidence: string } | { ok: false; why: string; fix: string };

/** What the guard checks on a host with this route (the same list kernelKeepsSplit judges). */
export function routeGuardSpec(choice: RouteChoice): SriovGuardSpec {
  return choice.route === 'xe'
    ? { mode: 'sriov', route: 'xe', forceProbe: choice.forceProbe }
    : { mode: 'sriov', route: 'i915-sriov-dkms' };
}

/**
 * Does `kernel` keep the split on this host? The route's requirements (guard/requirements.ts,
 * the list the kernel guard on the host checks too), judged from gathered facts: the release's
 * BUILD_EXCLUSIVE_KERNEL holds the kernel and — once the package is installed (`built`) — its
 * headers are there and dkms built i915 for it; for xe, the kernel is new enough. What only
 * modinfo on the host can tell (a module's parameters) is left to the guard there.
 * `release` is the i915-sriov-dkms release in use or about to be installed.
 */
export function kernelKeepsSplit(
  facts: HostFacts,
  choice: RouteChoice,
  kernel: string,
  release: { release: string; buildExclusiveKernel: string | undefined } | undefined,
  options: { built: boolean },
): KernelVerdict {
  const spec = routeGuardSpec(choice);
  if (spec.route === 'xe') {
    for (const req of splitRequirements(spec))
      if (req.kind === 'min-kernel' && !atLeast(kernel, req.major, req.minor))
        return { ok: false, ...shortfall(req, { kernel, release: '', range: '', platform: 'proxmox' }) };
    const [major, minor] = choice.forceProbe ? [6, 18] : [6, 17];
    return { ok: true, evidence: `kernel ${kernel} has xe with SR-IOV for this iGPU (${major}.${minor}+)` };
  }
  if (!release)
    return {
      ok: false,
      why: 'no i915-sriov-dkms release is installed or named',
      fix: 'name the release package in the lab file (sriov.hostDriver: file or url)',
    };
  const pattern = release.buildExclusiveKernel ?? knownRelease(release.release)?.buildExclusiveKernel;
  if (pattern === undefined)
    return {
      ok: false,
      why: `i915-sriov-dkms ${release.release} names no kernel range (no BUILD_EXCLUSIVE_KERNEL read)`,
      fix: 'use a release igpu-split knows (see docs) or reinstall the package so its dkms.conf is readable',
    };
  const values = {
    kernel,
    release: release.release,
    range: describeRange(pattern),
    platform: 'proxmox' as const,
  };
  for (const req of splitRequirements(spec)) {
    const missed = missedOnHost(req, facts, kernel, pattern, options.built);
    if (missed) return { ok: false, ...shortfall(req, values) };
  }
  return options.built
    ? { ok: true, evidence: `i915-sriov-dkms ${release.release} built for ${kernel}` }
    : { ok: true, evidence: `i915-sriov-dkms ${release.release} builds for ${kernel} (${values.range})` };
}

/**
 * A requirement the gathered facts show missed. Before the package is installed (`built`
 * false) only the range can be judged; a module's parameters only modinfo on the host tells.
 */
function missedOnHost(
  req: Requirement,
  facts: HostFacts,
  kernel: string,
  pattern: string,
  built: boolean,
): boolean {
  if (req.kind === 'dkms-range') return !buildsFor(pattern, kernel);
  if (!built) return false;
  if (req.kind === 'dkms-tool') return facts.packages.dkms === undefined;
  if (req.kind === 'headers') return !facts.kernels.withHeaders.includes(kernel);
  if (req.kind === 'dkms-module')
    return !(facts.sriovDriver.dkmsModules[kernel] ?? []).some((file) =>
      new RegExp(`^${req.module}\\.ko(\\.(xz|zst|gz))?$`).test(file),
    );
  return false;
}

/** Kernel parameters of a route: the ones the DKMS and the kernel documentation name. */
export function routeParams(choice: RouteChoice, vfs: number, deviceId: string): string[] {
  if (choice.route === 'i915-sriov-dkms')
    return [
      PARAM.intelIommuOn,
      SRIOV_PARAM.i915GucSubmission,
      SRIOV_PARAM.i915MaxVfs(vfs),
      SRIOV_PARAM.moduleBlacklist(MODULE.xe),
    ];
  return [
    PARAM.intelIommuOn,
    SRIOV_PARAM.xeMaxVfs(vfs),
    ...(choice.forceProbe ? [SRIOV_PARAM.xeForceProbe(deviceId)] : []),
    SRIOV_PARAM.moduleBlacklist(MODULE.i915),
  ];
}
