// Intel iGPU platforms (as the kernel's i915/xe drivers name them) and what each can share.
//
// This table is the runtime source; test/knowledge/igpu.test.ts holds it against
// snapshots/igpu-facts.json (made by scripts/extract-igpu-facts.ts), which was read from:
// - U:  ColinIanKing/linux-next @ ec6b81c0d0afefc2ef1e81fe66443c41582f1aba (a linux-next copy;
//       no torvalds/linux copy newer than v6.13 could be read): include/drm/intel/pciids.h and
//       drivers/gpu/drm/xe/xe_pci.c
// - G:  alvinsun039/linux-torvalds @ 796d7eeabc31f09198349a2e413b6a6b777b4dfd (a torvalds/linux
//       mirror): drivers/gpu/drm/i915/intel_gvt.c is_supported_device(); S1's v7.0 copy agrees
// - S1: strongtz/i915-sriov-dkms @ 2421d3ff8c27a967ffc2c6a1d19e0f3790ace5a0 (release 2026.05.06):
//       drivers/gpu/drm/i915/i915_pci.c, dkms.conf
//
// - graphicsVer: GEN() of the platform's i915 device info (S1 i915_pci.c; Meteor/Arrow Lake are
//   12.70/12.74, shown as 12); Lunar Lake Xe2 = 20 and Panther Lake Xe3 = 30 from the GMD_ID
//   tables of xe_pci.c. null where the driver reads the version from the hardware and its
//   tables name none for the platform (Wildcat Lake, Nova Lake-S).
// - gvt: G's is_supported_device(): Broadwell, Skylake, Kaby Lake, Broxton (Apollo Lake),
//   Coffee Lake (with Whiskey Lake and Amber Lake-Y 0x87ca, bound to cfl infos), Comet Lake.
// - sriov: the routes to SR-IOV virtual functions. A route exists where a driver's device info
//   for the platform sets has_sriov: S1's i915 (tgl_info, adl_s_info, adl_p_info, mtl_info) or
//   U's xe (tgl/adl_s/adl_p/adl_n descriptors behind require_force_probe; ptl_desc, also bound
//   to the Wildcat Lake ids, without). Upstream i915 has no SR-IOV code at all.
//   `experimental` marks a route the sources or user reports contest (/work/shared/SRIOV-FACTS.md
//   §0, §6): an xe route behind force_probe (the driver calls such devices "not officially
//   supported"), and S1 on Tiger Lake (host hangs reported, intel/mainline-tracking#3), Meteor
//   Lake and Arrow Lake (S1 issues #195, #297, #312, #359; Intel gives ARL no official support).
//   Kernels: S1 builds only where dkms.conf BUILD_EXCLUSIVE_KERNEL="^(6\.1[7-9]|7\.0)" matches.
//   SRIOV-FACTS §1b dates upstream xe's TGL/ADL has_sriov to 6.18 and Panther Lake without
//   force_probe to 6.17 (both from Phoronix reports, a secondary source); the source files read
//   here show the state at U only.
//   Rocket Lake has no route: rkl_info/rkl_desc lack has_sriov, and its PF has no SR-IOV
//   capability in PCI config space (S1 issue #27).

export type IgpuPlatform =
  | 'broadwell'
  | 'cherryview'
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
  | 'pantherlake'
  | 'wildcatlake'
  | 'novalake-s';

/**
 * Virtual functions an Intel iGPU offers at most: 7 (sriov_totalvfs; strongtz/i915-sriov-dkms
 * README.md @ 2421d3f "up to 7 VFs"; SRIOV-FACTS §5). The host's own sriov_totalvfs caps it again.
 * Here, not in the lab schema, so that what reads it need not load zod.
 */
export const MAX_IGPU_VFS = 7;

export interface SriovRoute {
  /** i915-sriov-dkms: strongtz's out-of-tree i915; xe: the upstream xe driver. */
  route: 'i915-sriov-dkms' | 'xe';
  /** Contested or unsupported by the vendor: never chosen on its own. */
  experimental: boolean;
  /** xe binds the device only with xe.force_probe=<device id>. */
  forceProbe?: boolean;
  note: string;
}

export interface IgpuPlatformInfo {
  id: IgpuPlatform;
  name: string;
  graphicsVer: number | null;
  driver: 'i915' | 'xe' | 'i915 or xe';
  gvt: boolean;
  sriov: SriovRoute[];
}

type Row = [name: string, graphicsVer: number | null, driver: IgpuPlatformInfo['driver'], gvt: boolean];

/** The kernel series S1's dkms.conf builds for (BUILD_EXCLUSIVE_KERNEL); the test holds it to the snapshot. */
export const I915_SRIOV_DKMS_KERNELS = ['6.17', '6.18', '6.19', '7.0'] as const;

const DKMS = (info: string, experimental: boolean, why?: string): SriovRoute => ({
  route: 'i915-sriov-dkms',
  experimental,
  note: `i915-sriov-dkms i915 (${info} has has_sriov), kernels ${I915_SRIOV_DKMS_KERNELS[0]}–${I915_SRIOV_DKMS_KERNELS.at(-1)}${why ? `; ${why}` : ''}`,
});
const XE_FORCED = (desc: string): SriovRoute => ({
  route: 'xe',
  experimental: true,
  forceProbe: true,
  note: `upstream xe (${desc} has has_sriov) only with xe.force_probe: not officially supported`,
});
const XE = (desc: string): SriovRoute => ({
  route: 'xe',
  experimental: false,
  forceProbe: false,
  note: `upstream xe (${desc} has has_sriov), no force_probe`,
});

const ROWS: Record<IgpuPlatform, [...Row, SriovRoute[]]> = {
  broadwell: ['Broadwell', 8, 'i915', true, []],
  cherryview: ['Cherryview', 8, 'i915', false, []],
  skylake: ['Skylake', 9, 'i915', true, []],
  kabylake: ['Kaby Lake', 9, 'i915', true, []],
  coffeelake: ['Coffee Lake', 9, 'i915', true, []],
  cometlake: ['Comet Lake', 9, 'i915', true, []],
  broxton: ['Apollo Lake', 9, 'i915', true, []],
  geminilake: ['Gemini Lake', 9, 'i915', false, []],
  cannonlake: ['Cannon Lake', 10, 'i915', false, []],
  icelake: ['Ice Lake', 11, 'i915', false, []],
  elkhartlake: ['Elkhart Lake', 11, 'i915', false, []],
  jasperlake: ['Jasper Lake', 11, 'i915', false, []],
  tigerlake: [
    'Tiger Lake',
    12,
    'i915',
    false,
    [
      DKMS('tgl_info', true, 'contested: VFs work for some, the host hangs for others'),
      XE_FORCED('tgl_desc'),
    ],
  ],
  rocketlake: ['Rocket Lake', 12, 'i915', false, []],
  'alderlake-s': ['Alder Lake-S', 12, 'i915', false, [DKMS('adl_s_info', false), XE_FORCED('adl_s_desc')]],
  'alderlake-p': ['Alder Lake-P', 12, 'i915', false, [DKMS('adl_p_info', false), XE_FORCED('adl_p_desc')]],
  'alderlake-n': ['Alder Lake-N', 12, 'i915', false, [DKMS('adl_p_info', false), XE_FORCED('adl_n_desc')]],
  'raptorlake-s': ['Raptor Lake-S', 12, 'i915', false, [DKMS('adl_s_info', false), XE_FORCED('adl_s_desc')]],
  'raptorlake-p': ['Raptor Lake-P', 12, 'i915', false, [DKMS('adl_p_info', false), XE_FORCED('adl_p_desc')]],
  'raptorlake-u': ['Raptor Lake-U', 12, 'i915', false, [DKMS('adl_p_info', false), XE_FORCED('adl_p_desc')]],
  meteorlake: [
    'Meteor Lake',
    12,
    'i915 or xe',
    false,
    [DKMS('mtl_info', true, 'contested in user reports; its own xe does not do SR-IOV here')],
  ],
  arrowlake: [
    'Arrow Lake',
    12,
    'i915 or xe',
    false,
    [DKMS('mtl_info', true, 'Intel gives Arrow Lake SR-IOV no official support; failures reported')],
  ],
  lunarlake: ['Lunar Lake', 20, 'xe', false, []],
  pantherlake: ['Panther Lake', 30, 'xe', false, [XE('ptl_desc')]],
  wildcatlake: ['Wildcat Lake', null, 'xe', false, [XE('ptl_desc')]],
  'novalake-s': ['Nova Lake-S', null, 'xe', false, []],
};

export const IGPU_PLATFORMS = Object.fromEntries(
  Object.entries(ROWS).map(([id, [name, graphicsVer, driver, gvt, sriov]]) => [
    id,
    { id, name, graphicsVer, driver, gvt, sriov },
  ]),
) as Record<IgpuPlatform, IgpuPlatformInfo>;
