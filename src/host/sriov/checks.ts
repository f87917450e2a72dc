// Doctor's SR-IOV checks for a host whose iGPU takes an SR-IOV route: the route, the running
// and the next-boot kernel against the route's range (kernelKeepsSplit, the one answer), the
// driver built and loaded, max_vfs accepted, the VF counts, the GuC firmware and the VF
// interface it implies, Secure Boot with the dkms key, and VFs the host drives itself.
//
// Decisions:
// - The release in use is the newest i915-sriov-dkms source folder (/usr/src), else the
//   installed package's version: what dkms builds from.
// - Before the driver runs, 7 VFs are predicted: an iGPU offers at most 7 (strongtz/i915-sriov-dkms
//   README @ 2421d3f; SRIOV-FACTS §5 "VF count").
// - A VF the host drives (i915 or xe on 00:02.1–.7) is a warning: it works, but the host's
//   own use of it crashes sessions (strongtz/i915-sriov-dkms docs/block-vfs.md, issue #279).

import type { Check } from '../../core/model.ts';
import { DKMS_PACKAGE } from '../../knowledge/i915-sriov-dkms.ts';
import {
  I915_PARAM,
  moduleParam,
  SRIOV_PARAM,
  unknownParameterMessage,
  XE_PARAM,
} from '../../knowledge/kernel.ts';
import type { DisplayDeviceFacts } from '../../linux/facts.ts';
import { splitCmdline } from '../../linux/parse/small-files.ts';
import type { HostFacts } from '../facts.ts';
import { sortKernels } from '../gather-sriov.ts';
import { kernelKeepsSplit, nextBootKernel, type RouteChoice, routeParams } from './route.ts';

/** The most VFs an Intel iGPU offers (strongtz/i915-sriov-dkms README @ 2421d3f; SRIOV-FACTS §5). */
export const IGPU_MAX_VFS = 7;

/**
 * GuC firmware → the VF interface (ABI) version it offers guests, as users matched them:
 * SRIOV-FACTS §5, strongtz/i915-sriov-dkms issues #186, #122, #225 and
 * bbaa-bbaa/i915-sriov-dkms#9 (pve-firmware 3.13-2 and newer carry the 1.13 ABI).
 */
export const GUC_VF_ABI: readonly { guc: string; abi: string }[] = [
  { guc: '70.13.1', abi: '1.4' },
  { guc: '70.20.0', abi: '1.9' },
  { guc: '70.29.2', abi: '1.13' },
];

/** The driver name vfio-pci registers (drivers/vfio/pci/vfio_pci.c `.name = "vfio-pci"`), as sysfs shows it. */
const VFIO_PCI_DRIVER = 'vfio-pci';

type Release = { release: string; buildExclusiveKernel: string | undefined };

export function sriovChecks(
  facts: HostFacts,
  igpu: DisplayDeviceFacts,
  choice: RouteChoice,
): { checks: Check[]; vgpu: { predicted: Record<string, number>; live: Record<string, number> } } {
  const release = releaseInUse(facts);
  const installed = release !== undefined;
  const dkms = choice.route === 'i915-sriov-dkms';
  const checks: Check[] = [
    routeCheck(choice),
    runningKernelCheck(facts, choice, release),
    nextBootCheck(facts, choice, release, installed),
    ...(dkms ? [moduleBuiltCheck(facts, release)] : []),
    moduleLoadedCheck(facts, igpu, choice),
    maxVfsCheck(facts, choice),
    ...countChecks(facts, igpu, choice),
    gucCheck(facts),
    ...(dkms ? secureBootChecks(facts) : []),
    ...vfDriverChecks(facts, igpu),
  ];
  const predicted = { 'sriov-vf': igpu.sriov?.totalVfs ?? IGPU_MAX_VFS };
  const live: Record<string, number> =
    igpu.sriov?.numVfs === undefined ? {} : { 'sriov-vf': igpu.sriov.numVfs };
  return { checks, vgpu: { predicted, live } };
}

/** The newest i915-sriov-dkms sources on the host, else the installed package's version. */
export function releaseInUse(facts: HostFacts): Release | undefined {
  const sources = facts.sriovDriver.dkmsSources;
  const newest = sortKernels(sources.map((s) => s.release)).at(-1);
  const source = sources.find((s) => s.release === newest);
  if (source) return source;
  const version = facts.packages[DKMS_PACKAGE];
  return version ? { release: version, buildExclusiveKernel: undefined } : undefined;
}

const routeName = (choice: RouteChoice) => (choice.route === 'xe' ? 'upstream xe' : choice.route);

function routeCheck(choice: RouteChoice): Check {
  const evidence = `${routeName(choice)}${choice.forceProbe ? ' behind xe.force_probe' : ''}: ${choice.note}`;
  return choice.experimental
    ? {
        id: 'sriov.route',
        status: 'warn',
        evidence: `experimental route: ${evidence}`,
        fix: 'expect trouble others reported for this platform (see the note); mode: passthrough gives the whole iGPU to one VM instead',
      }
    : { id: 'sriov.route', status: 'pass', evidence };
}

function runningKernelCheck(facts: HostFacts, choice: RouteChoice, release: Release | undefined): Check {
  const kernel = facts.kernelRelease;
  if (!kernel)
    return {
      id: 'sriov.kernel',
      status: 'warn',
      evidence: 'the running kernel is unknown (/proc/sys/kernel/osrelease missing)',
      fix: 'run doctor on the live host, or capture it again',
    };
  const verdict = kernelKeepsSplit(facts, choice, kernel, release, { built: false });
  return verdict.ok
    ? { id: 'sriov.kernel', status: 'pass', evidence: `running ${verdict.evidence}` }
    : { id: 'sriov.kernel', status: 'fail', evidence: `running: ${verdict.why}`, fix: verdict.fix };
}

function nextBootCheck(
  facts: HostFacts,
  choice: RouteChoice,
  release: Release | undefined,
  installed: boolean,
): Check {
  const kernel = nextBootKernel(facts);
  if (!kernel)
    return {
      id: 'sriov.next-boot',
      status: 'warn',
      evidence: 'no installed kernel found (/lib/modules/*/modules.dep)',
      fix: 'run doctor on the live host, or capture it again',
    };
  const how = facts.kernels.nextBootPin
    ? 'next-boot pin'
    : facts.kernels.pinned
      ? 'pinned'
      : 'newest installed';
  const verdict = kernelKeepsSplit(facts, choice, kernel, release, { built: installed });
  return verdict.ok
    ? { id: 'sriov.next-boot', status: 'pass', evidence: `next boot (${how}) ${kernel}: ${verdict.evidence}` }
    : {
        id: 'sriov.next-boot',
        status: 'fail',
        evidence: `next boot (${how}) ${kernel}: ${verdict.why}`,
        fix: verdict.fix,
      };
}

const I915_KO = /^i915\.ko(\.(xz|zst|gz))?$/;

function moduleBuiltCheck(facts: HostFacts, release: Release | undefined): Check {
  const kernel = facts.kernelRelease ?? 'the running kernel';
  if (!release)
    return {
      id: 'sriov.module-built',
      status: 'fail',
      evidence: `${DKMS_PACKAGE} is not installed (no /usr/src/${DKMS_PACKAGE}-*, no dpkg entry)`,
      fix: `install the ${DKMS_PACKAGE} release for kernel ${kernel} (docs/install-pve-host.md of the project; igpu-split host apply does it from sriov.hostDriver)`,
    };
  const built = facts.sriovDriver.dkmsModules[kernel] ?? [];
  const file = built.find((f) => I915_KO.test(f));
  return file
    ? {
        id: 'sriov.module-built',
        status: 'pass',
        evidence: `dkms installed ${file} for ${kernel} (${DKMS_PACKAGE} ${release.release})`,
      }
    : {
        id: 'sriov.module-built',
        status: 'fail',
        evidence: `no i915.ko in /lib/modules/${kernel}/updates/dkms: dkms did not build ${DKMS_PACKAGE} ${release.release} for the running kernel`,
        fix: `dkms autoinstall -k ${kernel} (headers: proxmox-headers-${kernel}) and read /var/lib/dkms/${DKMS_PACKAGE}/${release.release}/build/make.log if it fails; then reboot`,
      };
}

function moduleLoadedCheck(facts: HostFacts, igpu: DisplayDeviceFacts, choice: RouteChoice): Check {
  const want = choice.driver;
  const other = want === 'i915' ? 'xe' : 'i915';
  if (igpu.driver !== want)
    return {
      id: 'sriov.module-loaded',
      status: 'fail',
      evidence: `${igpu.bdf} is driven by ${igpu.driver ?? 'no driver'}, not ${want}${facts.modules.includes(want) ? ` (${want} is loaded)` : ` (${want} is not loaded)`}`,
      fix: `boot with ${SRIOV_PARAM.moduleBlacklist(other)} so ${other} leaves the iGPU to ${want}, and check the kernel log for ${want} errors`,
    };
  // Only the SR-IOV i915 declares max_vfs (upstream i915_params.c has none).
  if (want === 'i915' && facts.i915 && facts.i915.maxVfs === undefined)
    return {
      id: 'sriov.module-loaded',
      status: 'fail',
      evidence: `${igpu.bdf} is driven by the stock i915: /sys/module/i915/parameters has no max_vfs`,
      fix: `the ${DKMS_PACKAGE} i915 is not built for kernel ${facts.kernelRelease ?? '?'} (see sriov.module-built): dkms autoinstall, update-initramfs -u, reboot`,
    };
  return {
    id: 'sriov.module-loaded',
    status: 'pass',
    evidence: `${igpu.bdf} is driven by ${want === 'i915' ? `the ${DKMS_PACKAGE} i915 (it has max_vfs)` : 'xe'}`,
  };
}

function maxVfsCheck(facts: HostFacts, choice: RouteChoice): Check {
  const module = choice.driver;
  const param = module === 'i915' ? I915_PARAM.maxVfs : XE_PARAM.maxVfs;
  const name = moduleParam(module, param);
  const ignored = unknownParameterMessage(module, param);
  const line = facts.sriovDriver.kernelLog?.find((l) => l.includes(ignored));
  const wanted = routeParams(choice, IGPU_MAX_VFS, '<device id>').find((p) => p.startsWith(`${name}=`));
  if (line)
    return {
      id: 'sriov.max-vfs',
      status: 'fail',
      evidence: `kernel log: "${line.trim()}": the ${module} that loaded has no SR-IOV`,
      fix:
        module === 'i915'
          ? `the stock i915 loaded: build ${DKMS_PACKAGE} for kernel ${facts.kernelRelease ?? '?'} (dkms autoinstall), update-initramfs -u, reboot`
          : 'this kernel’s xe has no SR-IOV: boot a kernel whose xe offers it (see sriov.kernel)',
    };
  const loaded = module === 'i915' ? facts.i915?.maxVfs : undefined;
  if (loaded === 0 || (loaded === undefined && !cmdlineHas(facts, name)))
    return {
      id: 'sriov.max-vfs',
      status: 'fail',
      evidence: loaded === 0 ? `${name}=0: the PF enables no VFs` : `no ${name} on the kernel command line`,
      fix: `add ${wanted} to the kernel command line and reboot (igpu-split host apply does this)`,
    };
  if (loaded !== undefined)
    return { id: 'sriov.max-vfs', status: 'pass', evidence: `${name}=${loaded} accepted` };
  return facts.sriovDriver.kernelLog === undefined
    ? {
        id: 'sriov.max-vfs',
        status: 'warn',
        evidence: `${name} is on the command line; whether ${module} accepted it is unknown (no kernel log)`,
        fix: `run doctor on the live host as root, or look for "${ignored}" in journalctl -k -b`,
      }
    : {
        id: 'sriov.max-vfs',
        status: 'pass',
        evidence: `${name} on the command line, and no "${ignored}" in the kernel log`,
      };
}

function cmdlineHas(facts: HostFacts, name: string): boolean {
  return splitCmdline(facts.cmdline ?? '').some((p) => p.split('=')[0] === name);
}

function countChecks(facts: HostFacts, igpu: DisplayDeviceFacts, choice: RouteChoice): Check[] {
  const unread = (file: string) =>
    facts.unreadable.find((u) => u.path === `/sys/bus/pci/devices/${igpu.bdf}/${file}`);
  const sriov = igpu.sriov;
  if (!sriov) {
    const why = unread('sriov_totalvfs');
    return [
      why
        ? {
            id: 'sriov.driver',
            status: 'fail',
            evidence: `${why.path}: ${why.error}`,
            fix: 'check that file on the host (doctor reads it as root); whether the driver offers SR-IOV is unknown until then',
          }
        : {
            id: 'sriov.driver',
            status: 'fail',
            evidence: `${igpu.bdf} has no sriov_totalvfs: the running ${igpu.driver ?? 'no'} driver does not offer SR-IOV (${IGPU_MAX_VFS} VFs predicted once it does)`,
            fix: `${choice.route === 'xe' ? 'boot a kernel whose xe offers SR-IOV here' : `install ${DKMS_PACKAGE} for the running kernel`} and boot with ${routeParams(choice, IGPU_MAX_VFS, igpu.deviceId.toString(16).padStart(4, '0')).join(' ')} (igpu-split host apply does both)`,
          },
    ];
  }
  const driver: Check = {
    id: 'sriov.driver',
    status: 'pass',
    evidence: `${igpu.bdf} sriov_totalvfs=${sriov.totalVfs}`,
  };
  return [driver, liveCountCheck(igpu, sriov, unread('sriov_numvfs'))];
}

function liveCountCheck(
  igpu: DisplayDeviceFacts,
  sriov: { totalVfs: number; numVfs: number | undefined },
  unread: { path: string; error: string } | undefined,
): Check {
  if (sriov.numVfs === undefined)
    return {
      id: 'sriov.vfs',
      status: 'warn',
      evidence: unread
        ? `${unread.path}: ${unread.error}`
        : `/sys/bus/pci/devices/${igpu.bdf}/sriov_numvfs could not be read`,
      fix: 'check that file on the host; how many virtual functions are enabled is unknown until then',
    };
  if (sriov.numVfs > 0)
    return {
      id: 'sriov.vfs',
      status: 'pass',
      evidence: `${sriov.numVfs} of ${sriov.totalVfs} virtual functions enabled`,
    };
  return {
    id: 'sriov.vfs',
    status: 'warn',
    evidence: 'sriov_numvfs=0: no virtual functions yet',
    fix: `write the wanted count (at most ${sriov.totalVfs}) to /sys/bus/pci/devices/${igpu.bdf}/sriov_numvfs at boot (igpu-split's tmpfiles line does this)`,
  };
}

/** a < b for dotted version numbers. */
function older(a: string, b: string): boolean {
  return a.localeCompare(b, 'en', { numeric: true }) < 0;
}

/** The VF interface a GuC version implies: exact where users matched it, else a bound. */
export function vfInterfaceOf(guc: string): string {
  const exact = GUC_VF_ABI.find((row) => row.guc === guc);
  if (exact) return `VF interface ${exact.abi}`;
  const below = GUC_VF_ABI.filter((row) => older(row.guc, guc)).at(-1);
  const first = GUC_VF_ABI[0] as { guc: string; abi: string };
  return below
    ? `VF interface ${below.abi} or newer (GuC newer than ${below.guc})`
    : `VF interface older than ${first.abi} (GuC older than ${first.guc})`;
}

function gucCheck(facts: HostFacts): Check {
  const { gucVersion, kernelLog } = facts.sriovDriver;
  const newest = GUC_VF_ABI.at(-1) as { guc: string; abi: string };
  if (!gucVersion)
    return {
      id: 'sriov.guc',
      status: 'warn',
      evidence:
        kernelLog === undefined
          ? 'GuC firmware version unknown: the kernel log could not be read'
          : 'no "GuC firmware … version" line in this boot’s kernel log',
      fix:
        kernelLog === undefined
          ? 'run doctor on the live host as root (it reads journalctl -k -b), or capture the host again'
          : `boot with ${SRIOV_PARAM.i915GucSubmission} (the route's parameters) and check that the GuC firmware file exists under /lib/firmware (pve-firmware)`,
    };
  const abi = vfInterfaceOf(gucVersion);
  if (older(gucVersion, newest.guc))
    return {
      id: 'sriov.guc',
      status: 'warn',
      evidence: `GuC ${gucVersion}: ${abi}; guest drivers that want ${newest.abi} fail with "Unable to confirm version"`,
      fix: `apt-get install pve-firmware (3.13-2 or newer carries GuC ${newest.guc}, VF interface ${newest.abi}), update-initramfs -u -k all, reboot`,
    };
  return { id: 'sriov.guc', status: 'pass', evidence: `GuC ${gucVersion}: ${abi}` };
}

function secureBootChecks(facts: HostFacts): Check[] {
  if (facts.firmware.secureBoot !== true) return [];
  const enrolled = facts.sriovDriver.mokEnrolled;
  const fix =
    'mokutil --import /var/lib/dkms/mok.pub, reboot and choose Enroll MOK in the blue MOK screen (strongtz/i915-sriov-dkms docs/secure-boot.md); or turn Secure Boot off';
  if (enrolled === true)
    return [
      {
        id: 'sriov.secure-boot',
        status: 'pass',
        evidence: 'Secure Boot is on and the dkms signing key (/var/lib/dkms/mok.pub) is enrolled in MOK',
      },
    ];
  return [
    {
      id: 'sriov.secure-boot',
      status: enrolled === false ? 'fail' : 'warn',
      evidence:
        enrolled === false
          ? 'Secure Boot is on and the dkms signing key /var/lib/dkms/mok.pub is not enrolled: the kernel refuses the DKMS i915'
          : 'Secure Boot is on; whether the dkms signing key is enrolled is unknown (no /var/lib/dkms/mok.pub, or no MokListRT to compare)',
      fix,
    },
  ];
}

function vfDriverChecks(facts: HostFacts, igpu: DisplayDeviceFacts): Check[] {
  const slot = igpu.bdf.slice(0, -1);
  const vfs = facts.displayDevices.filter((d) => d.virtualFunction && d.bdf.startsWith(slot));
  if (vfs.length === 0) return [];
  const driven = vfs.filter((vf) => vf.driver !== undefined && vf.driver !== VFIO_PCI_DRIVER);
  if (driven.length === 0)
    return [
      {
        id: 'sriov.vf-drivers',
        status: 'pass',
        evidence: `no VF is driven by the host (${vfs.map((vf) => `${vf.bdf.slice(-3)} ${vf.driver ?? 'unbound'}`).join(', ')})`,
      },
    ];
  return [
    {
      id: 'sriov.vf-drivers',
      status: 'warn',
      evidence: `VFs driven by the host: ${driven.map((vf) => `${vf.bdf} ${vf.driver}`).join(', ')}`,
      fix: `keep VFs off host drivers: sriov_drivers_autoprobe=0 before sriov_numvfs (igpu-split's tmpfiles line) or a udev rule binding them to vfio-pci (docs/block-vfs.md of ${DKMS_PACKAGE}); now: echo <bdf> > /sys/bus/pci/devices/<bdf>/driver/unbind`,
    },
  ];
}
