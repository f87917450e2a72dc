// What an Ubuntu node VM has for its vGPU, read over SSH (files only; nothing runs):
// the running kernel and whether its module tree has i915, the packages installed,
// the Intel display device the guest sees and the driver bound to it, the DRM nodes
// and which render node is the Intel one, Secure Boot, and K3s.

import { type HostAccess, HostError, isMissing } from '../../access/host.ts';
import { TargetError } from '../../core/errors.ts';
import { MODULE } from '../../knowledge/kernel.ts';
import { readDisplayDevices } from '../../linux/display.ts';
import type { DisplayDeviceFacts } from '../../linux/facts.ts';
import { parseDpkgStatus } from '../../linux/parse/dpkg.ts';
import { parseOsRelease, parseSecureBootVar } from '../../linux/parse/small-files.ts';
import { PATHS } from '../../linux/paths.ts';
import { BOOT_ID } from '../../linux/reboot.ts';
import { gatherGuestGuard, type UbuntuGuardFacts } from './guard.ts';

export const INTEL = 0x8086;

export interface DrmNode {
  /** `card1`, `renderD129` */
  name: string;
  /** The PCI device behind it (from /sys/class/drm/<name>/device). */
  bdf: string | undefined;
  /** /dev/dri/<name> exists. */
  devNode: boolean;
}

export interface UbuntuGuestFacts {
  target: string;
  os: { id: string | undefined; versionId: string | undefined; prettyName: string | undefined };
  kernel: { release: string; flavour: string };
  /** Installed packages (dpkg status "install ok installed"), name → version. */
  packages: Map<string, string>;
  /** The running kernel's module tree has i915 (linux-modules-extra on Ubuntu). */
  i915Available: boolean;
  i915Loaded: boolean;
  /** Kernel releases under /lib/modules that have i915 (e.g. installed but not booted yet). */
  kernelsWithI915: string[];
  display: DisplayDeviceFacts[];
  drm: DrmNode[];
  secureBoot: boolean | undefined;
  k3s: boolean;
  bootId: string | undefined;
  /** What a VF needs (SR-IOV): the running command line, the kernels, what dkms built, our GRUB drop-in. */
  sriov: UbuntuSriovFacts;
  /** The kernel guard's files, its pin, the kernels in /boot and kernel packages left unfinished. */
  guard: UbuntuGuardFacts;
}

export interface UbuntuSriovFacts {
  /** /proc/cmdline. */
  cmdline: string;
  /** Every kernel release under /lib/modules, oldest first. */
  kernels: string[];
  /** Kernel releases whose module tree has i915 from dkms (/lib/modules/<k>/updates/dkms/i915.ko*). */
  dkmsI915: string[];
  /** Kernel releases whose module tree has xe (kernel/drivers/gpu/drm/xe). */
  withXe: string[];
  /** Our GRUB drop-in's content, when it is there. */
  grubDropin: string | undefined;
  /** /boot/grub/grub.cfg, when readable (what the next boot's command line is made from). */
  grubCfg: string | undefined;
}

/** The GRUB drop-in a guest on a VF gets; it sorts after the cloud images' 50-cloudimg-settings.cfg. */
export const SRIOV_GRUB_DROPIN = '/etc/default/grub.d/99-igpu-split-sriov.cfg';
const GRUB_CFG = '/boot/grub/grub.cfg';

/** Kernel releases in version order (6.8.0-9 before 6.8.0-10). */
export const byKernelVersion = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

const I915_DIR = (release: string) => `/lib/modules/${release}/kernel/drivers/gpu/drm/i915`;

/** What a read gives, or `absent` when the path is not there; any other failure is thrown. */
async function absentAs<T, A>(reading: Promise<T>, absent: A): Promise<T | A> {
  try {
    return await reading;
  } catch (error) {
    // expected: isMissing (ENOENT, ENOTDIR) — the file or folder is not there (no EFI, no DRM device)
    if (isMissing(error)) return absent;
    throw error;
  }
}

export async function gatherUbuntuFacts(guest: HostAccess): Promise<UbuntuGuestFacts> {
  const read = async (path: string) => (await absentAs(guest.readFile(path), undefined))?.toString('utf8');
  const [osText, release, status, secureBootRaw, bootId, modulesRoot, display, drmEntries, boot] =
    await Promise.all([
      read(PATHS.osRelease),
      read(PATHS.osrelease),
      read('/var/lib/dpkg/status'),
      absentAs(guest.readFile(PATHS.secureBoot), undefined),
      read(BOOT_ID),
      absentAs(guest.list('/lib/modules'), []),
      readDisplayDevices(guest),
      absentAs(guest.list('/sys/class/drm'), []),
      absentAs(guest.list('/boot'), []),
    ]);
  if (!release) {
    throw new TargetError('not a Linux guest: /proc/sys/kernel/osrelease is missing', {
      target: guest.target,
      fix: 'point --guest at the node VM (ssh://user@vm)',
    });
  }
  const kernelRelease = release.trim();
  const kernels = modulesRoot.map((entry) => entry.name).sort(byKernelVersion);
  const [sriov, guard] = await Promise.all([
    gatherSriov(guest, kernels, read),
    gatherGuestGuard(read, boot, status, kernels),
  ]);
  const os = parseOsRelease(osText ?? '');
  const withI915 = await Promise.all(
    modulesRoot.map(async (entry) =>
      (await guest.entryType(I915_DIR(entry.name))) ? entry.name : undefined,
    ),
  );
  const drm = await Promise.all(
    drmEntries
      .filter((entry) => /^(card\d+|renderD\d+)$/.test(entry.name))
      .map(async (entry) => ({
        name: entry.name,
        bdf: (await absentAs(guest.readLink(`/sys/class/drm/${entry.name}/device`), undefined))
          ?.split('/')
          .pop(),
        devNode: (await guest.entryType(`/dev/dri/${entry.name}`)) !== undefined,
      })),
  );
  const [i915Loaded, k3sBinary, k3sServer, k3sAgent] = await Promise.all([
    guest.entryType(`/sys/module/${MODULE.i915}`),
    guest.entryType('/usr/local/bin/k3s'),
    guest.entryType('/etc/systemd/system/k3s.service'),
    guest.entryType('/etc/systemd/system/k3s-agent.service'),
  ]);
  return {
    target: guest.target,
    os: { id: os.ID, versionId: os.VERSION_ID, prettyName: os.PRETTY_NAME },
    kernel: { release: kernelRelease, flavour: kernelRelease.split('-').pop() ?? '' },
    packages: parseDpkgStatus(status ?? ''),
    i915Available: withI915.includes(kernelRelease),
    i915Loaded: i915Loaded !== undefined,
    kernelsWithI915: withI915.filter((r): r is string => r !== undefined).sort(),
    display,
    drm: drm.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true })),
    secureBoot: secureBootRaw === undefined ? undefined : parseSecureBootVar(secureBootRaw),
    k3s: Boolean(k3sBinary || k3sServer || k3sAgent),
    bootId: bootId?.trim(),
    sriov,
    guard,
  };
}

/** A read that the login may not make (grub.cfg can be root's alone): unknown, not a failure. */
async function unlessDenied(reading: Promise<string | undefined>): Promise<string | undefined> {
  try {
    return await reading;
  } catch (error) {
    // expected: HostError EACCES — root-only file: unknown, so its step runs again (harmless)
    if (error instanceof HostError && error.code === 'EACCES') return undefined;
    throw error;
  }
}

async function gatherSriov(
  guest: HostAccess,
  kernels: string[],
  read: (path: string) => Promise<string | undefined>,
): Promise<UbuntuSriovFacts> {
  const dkmsDir = (k: string) => `/lib/modules/${k}/updates/dkms`;
  const [cmdline, grubDropin, grubCfg, dkms, xe] = await Promise.all([
    read(PATHS.cmdline),
    read(SRIOV_GRUB_DROPIN),
    unlessDenied(read(GRUB_CFG)),
    Promise.all(
      kernels.map(async (k) =>
        (await absentAs(guest.list(dkmsDir(k)), [])).some((e) => /^i915\.ko(\.(xz|zst|gz))?$/.test(e.name))
          ? k
          : undefined,
      ),
    ),
    Promise.all(
      kernels.map(async (k) =>
        (await guest.entryType(`/lib/modules/${k}/kernel/drivers/gpu/drm/xe`)) ? k : undefined,
      ),
    ),
  ]);
  const known = (list: (string | undefined)[]) => list.filter((k): k is string => k !== undefined);
  return {
    cmdline: (cmdline ?? '').trim(),
    kernels,
    dkmsI915: known(dkms),
    withXe: known(xe),
    grubDropin,
    grubCfg,
  };
}

/** The guest's Intel display device (the vGPU) and the DRM nodes that belong to it. */
export function intelGpu(
  facts: UbuntuGuestFacts,
): { device: DisplayDeviceFacts; card?: DrmNode; render?: DrmNode } | undefined {
  const device = facts.display.find((d) => d.vendorId === INTEL);
  if (!device) return undefined;
  const own = facts.drm.filter((node) => node.bdf === device.bdf);
  return {
    device,
    card: own.find((n) => n.name.startsWith('card')),
    render: own.find((n) => n.name.startsWith('renderD')),
  };
}
