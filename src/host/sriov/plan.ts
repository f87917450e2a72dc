// The SR-IOV part of the host plan: which route, how many VFs, the driver package, the
// files and parameters, and whether the kernel the host boots next keeps the split.
// Pure: facts and the lab's wishes in, desired state out (src/host/plan.ts turns it into steps).
//
// Decisions:
// - The VF count is planned with the VMs: `vfs: auto` is one VF per node VM on the host
//   (at least one), capped by sriov_totalvfs (7 before the driver offers SR-IOV: every
//   iGPU's maximum). `i915.max_vfs`/`xe.max_vfs` get the same number, so what doctor
//   predicts is what the host creates; changing it later means a reboot.
// - The driver package is installed with apt (dependencies resolved, `--simulate` first);
//   dkms, build-essential and proxmox-default-headers come with it, so every later Proxmox
//   kernel gets headers and dkms can build for it (S1 docs/install-pve-host.md @ 2421d3f).
// - The kernel the host boots next must keep the split (route.ts kernelKeepsSplit): when it
//   does not, plan warns and the reboot needs --force.
// - Secure Boot on with the dkms key not enrolled: the change is written, and the reboot
//   is left to the user at the console (MOK enrolment cannot be done over SSH): a manual step.

import type { HostWishes } from '../../config/derived.ts';
import type { Check } from '../../core/model.ts';
import {
  DKMS_PACKAGE,
  DKMS_RELEASES,
  type DkmsRelease,
  knownRelease,
  releaseOfPackageFile,
} from '../../knowledge/i915-sriov-dkms.ts';
import { lookupIgpu } from '../../knowledge/igpu-ids.ts';
import { IGPU_PLATFORMS } from '../../knowledge/igpu-platforms.ts';
import type { HostFacts } from '../facts.ts';
import type { HostVerdict } from '../verdict.ts';
import {
  chooseRoute,
  type KernelVerdict,
  kernelKeepsSplit,
  nextBootKernel,
  type RouteChoice,
  routeParams,
} from './route.ts';

/** The most VFs an Intel iGPU offers (SRIOV-FACTS §5; the same bound as the lab schema's). */
const IGPU_MAX_VFS = 7;

/** What the lab asks of an SR-IOV host (config/derived.ts hostWishesOf). */
export type SriovWishes = HostWishes;

/** The package step: what apt installs, and the release file it installs from. */
export interface DriverInstall {
  /** Packages apt installs by name (what is already installed is left out). */
  packages: string[];
  /** The release package: where it comes from and where it goes on the host. */
  release?: { name: string; release: string; file?: string; url?: string; sha256?: string; hostPath: string };
}

export interface SriovDesired {
  choice: RouteChoice;
  vfs: number;
  totalVfs: number;
  pfBdf: string;
  deviceId: string;
  params: string[];
  /** The kernel the host boots next and whether it keeps the split. */
  nextKernel: string | undefined;
  kernel: KernelVerdict;
  install?: DriverInstall;
  /** Secure Boot is on and the dkms key is not known to be enrolled. */
  mokEnrolment: boolean;
  checks: Check[];
}

/**
 * What builds the driver: strongtz/i915-sriov-dkms docs/install-pve-host.md @ 2421d3f, steps 1
 * and 2 (`apt install build-essential dkms`, `proxmox-default-headers` for the kernel's headers).
 */
export const DRIVER_BUILD_PACKAGES = ['dkms', 'build-essential', 'proxmox-default-headers'] as const;

/** Where the release package is put on the host before apt installs it. */
export const PACKAGE_DIR = '/var/lib/igpu-split/packages';

/** The SR-IOV desired state, or why the host cannot have it (one line). */
export function desiredSriov(
  facts: HostFacts,
  verdict: HostVerdict,
  wishes: SriovWishes,
): SriovDesired | string {
  const gpu = verdict.gpu;
  const known = gpu ? lookupIgpu(Number.parseInt(gpu.deviceId, 16)) : undefined;
  const platform = known ? IGPU_PLATFORMS[known.platform] : undefined;
  if (!gpu || !platform) return `no Intel iGPU igpu-split knows: ${verdict.modeReason}`;
  const choice = chooseRoute(platform, wishes.mode === 'sriov' ? 'sriov' : 'auto');
  if ('refused' in choice) return choice.refused;
  const igpu = facts.displayDevices.find((d) => d.bdf === gpu.bdf);
  const totalVfs = igpu?.sriov?.totalVfs ?? IGPU_MAX_VFS;
  const wanted = wishes.vfs === 'auto' ? Math.max(1, wishes.vmsOnHost) : wishes.vfs;
  const vfs = Math.min(wanted, totalVfs);
  const checks: Check[] = [];
  if (wishes.vmsOnHost > vfs)
    checks.push({
      id: 'sriov.vf-count',
      status: 'fail',
      evidence: `${wishes.vmsOnHost} node VMs on ${facts.target} but ${vfs} virtual functions (${wishes.vfs === 'auto' ? `sriov_totalvfs is ${totalVfs}` : `vfs: ${wishes.vfs}`})`,
      fix:
        wishes.vfs !== 'auto' && wishes.vfs < totalVfs
          ? `raise hosts[].vfs to ${Math.min(wishes.vmsOnHost, totalVfs)} or move VMs to another host`
          : `move ${wishes.vmsOnHost - vfs} of them to another host: the iGPU offers at most ${totalVfs}`,
    });
  if (choice.experimental)
    checks.push({
      id: 'sriov.route',
      status: 'warn',
      evidence: `experimental route: ${choice.note}`,
      fix: 'chosen because the lab says mode: sriov; set mode: auto to leave this host alone',
    });
  const release = releaseInUse(facts, choice, wishes);
  if (typeof release === 'string') return release;
  const nextKernel = nextBootKernel(facts);
  const installed = facts.packages[DKMS_PACKAGE];
  const kernel =
    nextKernel === undefined
      ? ({
          ok: false,
          why: 'no installed kernel was found under /lib/modules',
          fix: 'check the host: igpu-split doctor',
        } as const)
      : kernelKeepsSplit(facts, choice, nextKernel, release?.info, {
          built: installed === release?.info.release,
        });
  return {
    choice,
    vfs,
    totalVfs,
    pfBdf: gpu.bdf,
    deviceId: gpu.deviceId,
    params: routeParams(choice, vfs, gpu.deviceId),
    nextKernel,
    kernel,
    install: release?.install,
    mokEnrolment:
      choice.route === 'i915-sriov-dkms' &&
      facts.firmware.secureBoot === true &&
      facts.sriovDriver.mokEnrolled !== true,
    checks,
  };
}

/**
 * The DKMS release the host will run: the package the lab names (installed by this plan
 * unless that release is installed already), else the one installed. xe needs none.
 */
function releaseInUse(
  facts: HostFacts,
  choice: RouteChoice,
  wishes: SriovWishes,
):
  | {
      info: Pick<DkmsRelease, 'release'> & { buildExclusiveKernel: string | undefined };
      install?: DriverInstall;
    }
  | undefined
  | string {
  if (choice.route === 'xe') return undefined;
  const installedRelease = facts.packages[DKMS_PACKAGE];
  const source = wishes.driver;
  const named = source?.file ?? source?.url;
  if (named === undefined) {
    if (installedRelease === undefined)
      return `${facts.target} needs the i915-sriov-dkms driver and the lab names no package: set sriov.hostDriver to the release .deb (file: or url:) from github.com/strongtz/i915-sriov-dkms/releases`;
    const installedSource = facts.sriovDriver.dkmsSources.find((s) => s.release === installedRelease);
    return { info: installedSource ?? { release: installedRelease, buildExclusiveKernel: undefined } };
  }
  const name = named.slice(named.lastIndexOf('/') + 1);
  const release = releaseOfPackageFile(name);
  if (release === undefined)
    return `sriov.hostDriver ${name}: not an i915-sriov-dkms release file (i915-sriov-dkms_<release>_amd64.deb): name the release's own file`;
  const info = knownRelease(release) ?? facts.sriovDriver.dkmsSources.find((s) => s.release === release);
  if (info === undefined)
    return `sriov.hostDriver: igpu-split has not read the kernel range of i915-sriov-dkms ${release}: use one of ${knownReleases()}`;
  const needed = ['dkms', 'build-essential', 'proxmox-default-headers'].filter(
    (p) => facts.packages[p] === undefined,
  );
  if (installedRelease === release && needed.length === 0) return { info };
  return {
    info,
    install: {
      packages: needed,
      release:
        installedRelease === release
          ? undefined
          : {
              name,
              release,
              file: source?.file,
              url: source?.url,
              sha256: source?.sha256,
              hostPath: `${PACKAGE_DIR}/${name}`,
            },
    },
  };
}

/** The newest releases of the table, for the message (the table names them all). */
function knownReleases(): string {
  return DKMS_RELEASES.slice(-3)
    .map((r) => r.release)
    .join(', ');
}
