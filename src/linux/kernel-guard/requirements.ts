// What a kernel must have so the GPU split survives booting it: one list per mode and route,
// and the one text for each way it can fall short. Both judges of "does kernel K keep the
// split on this host" read this list: kernelKeepsSplit (src/host/sriov/route.ts, for plan,
// apply and doctor, from gathered facts) and the kernel guard on the host (script.ts renders
// the list into its settings and the texts into its messages), so the two cannot drift apart.
//
// Decisions:
// - Every requirement is decided from files, never from dkms wording or exit codes (dkms
//   3.0.10 and 3.4 disagree on what a skipped build returns; KERNEL-UPGRADE-FACTS §2a):
//   the module file under /lib/modules/K/updates/dkms, `modinfo -k K -F parm` of the module
//   that kernel would load, the range from the installed /usr/src/<package>-*/dkms.conf,
//   the headers at /lib/modules/K/build/include (what dkms's own kernel hook tests:
//   debian/kernel_postinst.d_dkms of Debian 12's dkms 3.0.10, read in the boot-chain root).
// - GVT-g needs kvmgt and an i915 with enable_gvt; passthrough the vfio modules (built in or
//   modules: `modinfo -k` answers for both).

import { MODULE } from '../../knowledge/kernel.ts';

export type Requirement =
  /** dkms itself is installed (the package, with its kernel hook). */
  | { kind: 'dkms-tool'; module: string }
  /** dkms can build for K: its headers are installed. */
  | { kind: 'headers'; module: string }
  /** K lies in the BUILD_EXCLUSIVE_KERNEL range of an installed release of `package`. */
  | { kind: 'dkms-range'; package: string }
  /** dkms installed `module` for K. */
  | { kind: 'dkms-module'; package: string; module: string }
  /** The `module` K would load declares `parm` (modinfo -k K -F parm module). */
  | { kind: 'module-parm'; module: string; parm: string; why: string; remedy: 'rebuild' | 'other-kernel' }
  /** K has `module`, built in or as a file. */
  | { kind: 'module'; module: string }
  /** K is major.minor or newer. */
  | { kind: 'min-kernel'; major: number; minor: number; why: string };

/** What the split on a host (or in a guest) is, as far as kernels are concerned. */
export type GuardSpec =
  | { mode: 'gvt-g' }
  | { mode: 'passthrough' }
  | { mode: 'sriov'; route: 'i915-sriov-dkms' }
  | { mode: 'sriov'; route: 'xe'; forceProbe: boolean };

/** The SR-IOV specs (a route's). */
export type SriovGuardSpec = Extract<GuardSpec, { mode: 'sriov' }>;

/**
 * Proxmox's headers package for a kernel release: `proxmox-headers-@KVNAME@`
 * (proxmox/pve-kernel debian/control.in @ 6e44995b).
 */
export const PROXMOX_HEADERS_PREFIX = 'proxmox-headers-';

/** Where the guard runs: a Proxmox host, or an Ubuntu guest (no proxmox-boot-tool there). */
export type GuardPlatform = 'proxmox' | 'ubuntu';

/**
 * What the messages name per platform: the headers package of a kernel release and the
 * package that keeps them coming for later kernels, and how to boot another kernel.
 * Ubuntu: linux-headers-generic depends on linux-headers-${kernel-abi-version}-generic, the
 * `uname -r` of a generic kernel (pexip/os-linux-meta debian/control @ f8f87010); linux-generic
 * brings it (the guest layer installs linux-generic).
 */
export const PLATFORM_TEXT: Readonly<
  Record<GuardPlatform, { headersPackage: string; headersMeta: string; pin: string }>
> = {
  proxmox: {
    headersPackage: PROXMOX_HEADERS_PREFIX,
    headersMeta: 'proxmox-default-headers',
    pin: 'proxmox-boot-tool kernel pin',
  },
  ubuntu: {
    headersPackage: 'linux-headers-',
    headersMeta: 'linux-generic',
    pin: 'the guard pins it in /etc/default/grub.d/99-igpu-split-kernel-pin.cfg; or remove that kernel',
  },
};

/** The out-of-tree driver's package (strongtz/i915-sriov-dkms dkms.conf PACKAGE_NAME @ 2421d3f). */
const DKMS_PACKAGE = 'i915-sriov-dkms';

/** The requirements of a spec, in the order they are judged (the first one failing is the reason). */
export function splitRequirements(spec: GuardSpec): Requirement[] {
  if (spec.mode === 'gvt-g')
    return [
      { kind: 'module', module: MODULE.kvmgt },
      {
        kind: 'module-parm',
        module: MODULE.i915,
        parm: 'enable_gvt',
        why: 'built without GVT-g',
        remedy: 'other-kernel',
      },
    ];
  if (spec.mode === 'passthrough')
    return [
      { kind: 'module', module: MODULE.vfio },
      { kind: 'module', module: MODULE.vfioIommuType1 },
      { kind: 'module', module: MODULE.vfioPci },
    ];
  if (spec.route === 'xe') {
    // xe offers SR-IOV for Panther/Wildcat Lake from 6.17, for TGL/ADL behind force_probe from 6.18 (SRIOV-FACTS §1b).
    const [major, minor] = spec.forceProbe ? [6, 18] : [6, 17];
    return [
      { kind: 'min-kernel', major, minor, why: 'whose xe first offers SR-IOV here' },
      {
        kind: 'module-parm',
        module: MODULE.xe,
        parm: 'max_vfs',
        why: 'its xe has no SR-IOV',
        remedy: 'other-kernel',
      },
    ];
  }
  return [
    { kind: 'dkms-range', package: DKMS_PACKAGE },
    { kind: 'dkms-tool', module: MODULE.i915 },
    { kind: 'headers', module: MODULE.i915 },
    { kind: 'dkms-module', package: DKMS_PACKAGE, module: MODULE.i915 },
    {
      kind: 'module-parm',
      module: MODULE.i915,
      parm: 'max_vfs',
      why: 'the stock i915 would load and ignore max_vfs',
      remedy: 'rebuild',
    },
  ];
}

/**
 * What a message may name besides the kernel: the release and range read from dkms.conf.
 * Values are text; script.ts passes shell variable references in their place.
 */
export interface TextValues {
  kernel: string;
  release: string;
  range: string;
  platform: GuardPlatform;
}

export interface Shortfall {
  why: string;
  fix: string;
}

/** Why kernel K misses a requirement, and what to do: the one wording of plan, doctor and the guard. */
export function shortfall(req: Requirement, v: TextValues): Shortfall {
  const on = PLATFORM_TEXT[v.platform];
  switch (req.kind) {
    case 'dkms-range':
      return {
        why: `${req.package} ${v.release} builds only for kernels ${v.range}, not ${v.kernel}: the stock i915 would load and ignore max_vfs`,
        fix: `use a release whose range holds ${v.kernel}, or boot a kernel in ${v.range} (${on.pin})`,
      };
    case 'dkms-tool':
      return {
        why: `dkms is not installed, so nothing builds ${req.module} for kernel ${v.kernel}`,
        fix: `apt-get install dkms, then dkms autoinstall -k ${v.kernel}`,
      };
    case 'headers':
      return {
        why: `the headers of kernel ${v.kernel} are not installed, so dkms cannot build ${req.module} for it`,
        fix: `apt-get install ${on.headersPackage}${v.kernel} (${on.headersMeta} keeps future kernels covered), then dkms autoinstall -k ${v.kernel}`,
      };
    case 'dkms-module':
      return {
        why: `dkms has not installed ${req.module} for kernel ${v.kernel} (/lib/modules/${v.kernel}/updates/dkms has no ${req.module}.ko)`,
        fix: `run dkms autoinstall -k ${v.kernel} and read its log (/var/lib/dkms/${req.package}/${v.release}/build/make.log)`,
      };
    case 'module-parm':
      return {
        why: `modinfo -k ${v.kernel} -F parm ${req.module} lists no ${req.parm}: ${req.why}`,
        fix:
          req.remedy === 'rebuild'
            ? `rebuild the module for it (dkms autoinstall -k ${v.kernel}; depmod ${v.kernel}), or boot another kernel (${on.pin})`
            : `boot a kernel whose ${req.module} has ${req.parm} (${on.pin})`,
      };
    case 'module':
      return {
        why: `kernel ${v.kernel} has no ${req.module} module (modinfo -k ${v.kernel} ${req.module} finds none)`,
        fix: `boot a kernel that has ${req.module} (${on.pin}), or install the package that ships it for ${v.kernel}`,
      };
    case 'min-kernel':
      return {
        why: `kernel ${v.kernel} is older than ${req.major}.${req.minor}, ${req.why}`,
        fix: `install a Proxmox kernel ${req.major}.${req.minor} or newer (proxmox-kernel-${req.major}.${req.minor}), then plan again`,
      };
  }
}

/** When no release of the package is installed at all (a removed or renamed package). */
export function noSourcesShortfall(pkg: string, kernel: string): Shortfall {
  return {
    why: `no ${pkg} sources are installed (/usr/src/${pkg}-*/dkms.conf), so nothing builds i915 with SR-IOV for kernel ${kernel}`,
    fix: `install the ${pkg} package again (igpu-split apply), or name its new package in the lab file if it was renamed`,
  };
}
