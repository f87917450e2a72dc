// Intel iGPU platforms (as the kernel's i915/xe drivers name them) and what each can share.
//
// Sources:
// - graphicsVer: Linux v6.13 drivers/gpu/drm/i915/i915_pci.c (GRAPHICS_VER per platform
//   info; Meteor/Arrow Lake are 12.70/12.74, shown as 12) and drivers/gpu/drm/xe/xe_pci.c
//   (Lunar Lake Xe2 = 20, Panther Lake Xe3 = 30).
// - gvt: Linux v6.13 drivers/gpu/drm/i915/intel_gvt.c is_supported_device(): Broadwell,
//   Skylake, Kaby Lake, Broxton (Apollo Lake), Coffee Lake, Comet Lake. Nothing else.
// - sriov: whether the physical function can expose VFs with a driver a Proxmox user can
//   install. Upstream xe sets has_sriov for Panther Lake (xe_pci.c ptl_desc). Gen 12
//   Alder Lake / Raptor Lake iGPUs get SR-IOV from Intel's i915 SR-IOV patches (shipped
//   as i915-sriov-dkms), which expose sriov_totalvfs = 7. Tiger Lake, Rocket Lake, Meteor,
//   Arrow and Lunar Lake are left out: upstream xe does not enable a PF for them and the
//   out-of-tree support is partial; they are treated as passthrough-only until that changes.

export type IgpuPlatform =
  | 'broadwell'
  | 'skylake'
  | 'kabylake'
  | 'coffeelake'
  | 'cometlake'
  | 'broxton'
  | 'geminilake'
  | 'cannonlake'
  | 'icelake'
  | 'elkhartlake'
  | 'jasperlake'
  | 'tigerlake'
  | 'rocketlake'
  | 'alderlake-s'
  | 'alderlake-p'
  | 'alderlake-n'
  | 'raptorlake-s'
  | 'raptorlake-p'
  | 'raptorlake-u'
  | 'meteorlake'
  | 'arrowlake'
  | 'lunarlake'
  | 'pantherlake';

export interface IgpuPlatformInfo {
  id: IgpuPlatform;
  name: string;
  graphicsVer: number;
  driver: 'i915' | 'xe' | 'i915 or xe';
  gvt: boolean;
  sriov: boolean;
  sriovNote?: string;
}

type Row = [
  name: string,
  graphicsVer: number,
  driver: IgpuPlatformInfo['driver'],
  gvt: boolean,
  sriov: boolean,
  note?: string,
];

const DKMS = 'SR-IOV through Intel’s i915 SR-IOV driver (i915-sriov-dkms), not upstream i915';
const NO_PF = 'no SR-IOV physical function in upstream drivers; passthrough only';

const ROWS: Record<IgpuPlatform, Row> = {
  broadwell: ['Broadwell', 8, 'i915', true, false],
  skylake: ['Skylake', 9, 'i915', true, false],
  kabylake: ['Kaby Lake', 9, 'i915', true, false],
  coffeelake: ['Coffee Lake', 9, 'i915', true, false],
  cometlake: ['Comet Lake', 9, 'i915', true, false],
  broxton: ['Apollo Lake', 9, 'i915', true, false],
  geminilake: ['Gemini Lake', 9, 'i915', false, false],
  cannonlake: ['Cannon Lake', 10, 'i915', false, false],
  icelake: ['Ice Lake', 11, 'i915', false, false],
  elkhartlake: ['Elkhart Lake', 11, 'i915', false, false],
  jasperlake: ['Jasper Lake', 11, 'i915', false, false],
  tigerlake: ['Tiger Lake', 12, 'i915', false, false, NO_PF],
  rocketlake: ['Rocket Lake', 12, 'i915', false, false, NO_PF],
  'alderlake-s': ['Alder Lake-S', 12, 'i915', false, true, DKMS],
  'alderlake-p': ['Alder Lake-P', 12, 'i915', false, true, DKMS],
  'alderlake-n': ['Alder Lake-N', 12, 'i915', false, true, DKMS],
  'raptorlake-s': ['Raptor Lake-S', 12, 'i915', false, true, DKMS],
  'raptorlake-p': ['Raptor Lake-P', 12, 'i915', false, true, DKMS],
  'raptorlake-u': ['Raptor Lake-U', 12, 'i915', false, true, DKMS],
  meteorlake: ['Meteor Lake', 12, 'i915 or xe', false, false, NO_PF],
  arrowlake: ['Arrow Lake', 12, 'i915 or xe', false, false, NO_PF],
  lunarlake: ['Lunar Lake', 20, 'xe', false, false, NO_PF],
  pantherlake: ['Panther Lake', 30, 'xe', false, true, 'SR-IOV physical function in upstream xe (has_sriov)'],
};

export const IGPU_PLATFORMS = Object.fromEntries(
  Object.entries(ROWS).map(([id, [name, graphicsVer, driver, gvt, sriov, sriovNote]]) => [
    id,
    { id, name, graphicsVer, driver, gvt, sriov, ...(sriovNote ? { sriovNote } : {}) },
  ]),
) as Record<IgpuPlatform, IgpuPlatformInfo>;
