// Talos on an SR-IOV virtual function: experimental, and only where it can work.
//
// The official i915 extension ships upstream i915, which has no SR-IOV code (SRIOV-FACTS §3),
// so it cannot drive a VF. The official xe extension (siderolabs/xe, first in Talos v1.12)
// ships upstream xe for the Talos kernel; upstream xe enters VF mode where its platform
// descriptor sets has_sriov, which for Tiger/Alder/Raptor Lake happens from Linux 6.18 behind
// xe.force_probe=<device id> (SRIOV-FACTS §1b; knowledge/igpu-platforms.ts has the routes).
// Talos v1.12 to v1.14 ship Linux 6.18 (knowledge/pins.ts TALOS_KERNEL_SERIES). Meteor and
// Arrow Lake VFs have no xe route at all: only i915-sriov-dkms drives them, which Talos has no
// official extension for. No report pairs a stock-xe guest with an i915-DKMS PF, so the plan
// is marked experimental and is never taken unless the host says `mode: sriov` itself.

import { lookupIgpu } from '../../knowledge/igpu-ids.ts';
import { IGPU_PLATFORMS } from '../../knowledge/igpu-platforms.ts';
import { TALOS_EXTENSIONS, TALOS_KERNEL_SERIES, TALOS_XE_EXTENSION_SINCE } from '../../knowledge/pins.ts';
import type { VfAttachment } from '../provider.ts';

export const XE_EXTENSION = TALOS_EXTENSIONS.xe;

/** What the schematic carries for a VF: the xe extension and its kernel arguments. */
export interface TalosVfGpu {
  extension: typeof XE_EXTENSION;
  kernelArgs: string[];
  experimental: true;
  note: string;
}

const UBUNTU_INSTEAD = 'an Ubuntu 24.04 guest with i915-sriov-dkms drives it (os: ubuntu)';

/** The xe setup for a Talos node on this VF, or why there is none (one line naming the VM, with the fix). */
export function talosVfGpu(
  attachment: VfAttachment,
  version: string,
  keptExtensions: readonly string[],
  vm: string,
): TalosVfGpu | { refused: string } {
  const id = attachment.pfDeviceId;
  const known = id ? lookupIgpu(Number.parseInt(id, 16)) : undefined;
  const platform = known ? IGPU_PLATFORMS[known.platform] : undefined;
  if (!id || !platform)
    return {
      refused: `${vm}: Talos on an SR-IOV VF needs the iGPU's device id and platform, and host ${attachment.host} ${id ? `has ${id}, which igpu-split does not know` : 'was not read'}; fix: give the host ssh: in the lab file and plan again, or ${UBUNTU_INSTEAD}`,
    };
  const xe = platform.sriov.find((r) => r.route === 'xe');
  if (!xe)
    return {
      refused: `${vm}: Talos cannot drive a ${platform.name} VF: its official i915 extension has no SR-IOV code and upstream xe has no SR-IOV for ${platform.name}; fix: ${UBUNTU_INSTEAD}`,
    };
  if (!attachment.explicit)
    return {
      refused: `${vm}: Talos on a VF (the official xe extension) is experimental and host ${attachment.host} chose SR-IOV on its own; fix: set mode: sriov on host ${attachment.host} to opt in, or ${UBUNTU_INSTEAD}`,
    };
  const [, major, minor] = /^v(\d+)\.(\d+)\./.exec(version) ?? [];
  const series = TALOS_KERNEL_SERIES[`${major}.${minor}`];
  const [xeMajor, xeMinor] = TALOS_XE_EXTENSION_SINCE;
  const tooOld =
    Number(major) < xeMajor || (Number(major) === xeMajor && Number(minor) < xeMinor) || !atLeast618(series);
  if (tooOld)
    return {
      refused: `${vm}: Talos ${version} ${series ? `runs Linux ${series}, and` : 'is a release whose kernel igpu-split does not know;'} its xe drives ${platform.name} VFs only from Linux 6.18 (the xe extension exists from Talos v${xeMajor}.${xeMinor}); fix: set talos.version to a v1.12 or later release (Linux 6.18), or ${UBUNTU_INSTEAD}`,
    };
  // i915 stays off the VF when the lab keeps the i915 extension (kernel's module_blacklist).
  const blacklist = keptExtensions.includes(TALOS_EXTENSIONS.i915) ? ['module_blacklist=i915'] : [];
  return {
    extension: XE_EXTENSION,
    kernelArgs: [...(xe.forceProbe ? [`xe.force_probe=${id}`] : []), ...blacklist],
    experimental: true,
    note: `experimental: Talos ${version} (Linux ${series}) drives the ${platform.name} VF with the official xe extension${xe.forceProbe ? ` behind xe.force_probe=${id} (not officially supported)` : ''}; no report yet pairs a stock-xe guest with an i915-sriov-dkms host`,
  };
}

function atLeast618(series: string | undefined): boolean {
  const [major, minor] = (series ?? '0.0').split('.').map(Number);
  return (major ?? 0) > 6 || ((major ?? 0) === 6 && (minor ?? 0) >= 18);
}
