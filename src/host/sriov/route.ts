// Which SR-IOV driver route a host takes, the kernel parameters it needs, and the one
// answer to "does kernel K keep the split on this host" (plan now; the kernel-upgrade
// guard of issue 17 later).
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

/**
 * Does `kernel` keep the split on this host? For the DKMS route: the release's
 * BUILD_EXCLUSIVE_KERNEL matches it, and — once the package is installed (`built`) — dkms
 * built i915 for it. For xe: the kernel is new enough for the route.
 * `release` is the i915-sriov-dkms release in use or about to be installed.
 */
export function kernelKeepsSplit(
  facts: HostFacts,
  choice: RouteChoice,
  kernel: string,
  release: { release: string; buildExclusiveKernel: string | undefined } | undefined,
  options: { built: boolean },
): KernelVerdict {
  if (choice.route === 'xe') {
    const [major, minor] = choice.forceProbe ? [6, 18] : [6, 17];
    return atLeast(kernel, major, minor)
      ? { ok: true, evidence: `kernel ${kernel} has xe with SR-IOV for this iGPU (${major}.${minor}+)` }
      : {
          ok: false,
          why: `kernel ${kernel} is older than ${major}.${minor}, whose xe first offers SR-IOV here`,
          fix: `install a Proxmox kernel ${major}.${minor} or newer (proxmox-kernel-${major}.${minor}), then plan again`,
        };
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
  if (!buildsFor(pattern, kernel))
    return {
      ok: false,
      why: `i915-sriov-dkms ${release.release} builds only for kernels ${describeRange(pattern)}, not ${kernel}: the stock i915 would load and ignore max_vfs`,
      fix: `use a release whose range holds ${kernel}, or boot a kernel in ${describeRange(pattern)} (proxmox-boot-tool kernel pin)`,
    };
  if (!options.built)
    return {
      ok: true,
      evidence: `i915-sriov-dkms ${release.release} builds for ${kernel} (${describeRange(pattern)})`,
    };
  if (!facts.kernels.withHeaders.includes(kernel))
    return {
      ok: false,
      why: `the headers of kernel ${kernel} are not installed, so dkms cannot build i915 for it`,
      fix: `apt-get install proxmox-headers-${kernel} (proxmox-default-headers keeps future kernels covered), then dkms autoinstall -k ${kernel}`,
    };
  const built = facts.sriovDriver.dkmsModules[kernel] ?? [];
  if (!built.some((file) => /^i915\.ko(\.(xz|zst|gz))?$/.test(file)))
    return {
      ok: false,
      why: `dkms has not installed i915 for kernel ${kernel} (/lib/modules/${kernel}/updates/dkms has no i915.ko)`,
      fix: `run dkms autoinstall -k ${kernel} on the host and read its log (/var/lib/dkms/${'i915-sriov-dkms'}/${release.release}/build/make.log)`,
    };
  return { ok: true, evidence: `i915-sriov-dkms ${release.release} built for ${kernel}` };
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
