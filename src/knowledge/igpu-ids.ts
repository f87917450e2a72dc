// Intel integrated GPU PCI device ids (vendor 0x8086) → platform, Broadwell onwards.
//
// Source: include/drm/intel/pciids.h at ColinIanKing/linux-next
// ec6b81c0d0afefc2ef1e81fe66443c41582f1aba (the newest upstream copy that could be read; it
// has the Wildcat Lake and Nova Lake-S lists, not yet Nova Lake-P). Each group is one
// INTEL_*_IDS list, with exactly that list's ids; test/knowledge/igpu.test.ts holds them
// against snapshots/igpu-facts.json, made from the file by scripts/extract-igpu-facts.ts.
// Platforms follow the drivers' bindings (i915_pci.c, xe_pci.c): Whiskey Lake and the Amber
// Lake "AML/CFL" list bind to Coffee Lake infos, the "AML/KBL" list to Kaby Lake. Discrete
// GPUs (DG1, DG2, ATS-M, PVC, Battlemage, Crescent Island) and iGPUs older than Broadwell
// are left out.

import type { IgpuPlatform } from './igpu-platforms.ts';

export interface IgpuId {
  deviceId: number;
  platform: IgpuPlatform;
  /** Marketing name when it differs from the platform (Whiskey Lake, Amber Lake). */
  variant?: string;
}

type Group = [list: string, platform: IgpuPlatform, ids: number[], variant?: string];

/** Kaby Lake and Coffee Lake by their sub-lists, so Amber Lake keeps its own name. */
export const ID_LISTS: readonly Group[] = [
  [
    'INTEL_BDW_IDS',
    'broadwell',
    [
      0x1606, 0x160b, 0x160e, 0x1602, 0x160a, 0x160d, 0x1616, 0x161b, 0x161e, 0x1612, 0x161a, 0x161d, 0x1626,
      0x162b, 0x162e, 0x1622, 0x162a, 0x162d, 0x1636, 0x163b, 0x163e, 0x1632, 0x163a, 0x163d,
    ],
  ],
  ['INTEL_CHV_IDS', 'cherryview', [0x22b0, 0x22b1, 0x22b2, 0x22b3]],
  [
    'INTEL_SKL_IDS',
    'skylake',
    [
      0x1906, 0x1913, 0x190e, 0x1915, 0x1902, 0x190a, 0x190b, 0x1917, 0x1916, 0x1921, 0x191e, 0x1912, 0x191a,
      0x191b, 0x191d, 0x1923, 0x1926, 0x1927, 0x192a, 0x192b, 0x192d, 0x1932, 0x193a, 0x193b, 0x193d,
    ],
  ],
  ['INTEL_BXT_IDS', 'broxton', [0x0a84, 0x1a84, 0x1a85, 0x5a84, 0x5a85]],
  ['INTEL_GLK_IDS', 'geminilake', [0x3184, 0x3185]],
  ['INTEL_KBL_GT1_IDS', 'kabylake', [0x5906, 0x5913, 0x590e, 0x5915, 0x5902, 0x5908, 0x590a, 0x590b]],
  ['INTEL_KBL_GT2_IDS', 'kabylake', [0x5916, 0x5921, 0x591e, 0x5912, 0x5917, 0x591a, 0x591b, 0x591d]],
  ['INTEL_KBL_GT3_IDS', 'kabylake', [0x5926, 0x5923, 0x5927]],
  ['INTEL_KBL_GT4_IDS', 'kabylake', [0x593b]],
  ['INTEL_AML_KBL_GT2_IDS', 'kabylake', [0x591c, 0x87c0], 'Amber Lake'],
  ['INTEL_CFL_S_GT1_IDS', 'coffeelake', [0x3e90, 0x3e93, 0x3e99]],
  ['INTEL_CFL_S_GT2_IDS', 'coffeelake', [0x3e91, 0x3e92, 0x3e96, 0x3e98, 0x3e9a]],
  ['INTEL_CFL_H_GT1_IDS', 'coffeelake', [0x3e9c]],
  ['INTEL_CFL_H_GT2_IDS', 'coffeelake', [0x3e94, 0x3e9b]],
  ['INTEL_CFL_U_GT2_IDS', 'coffeelake', [0x3ea9]],
  ['INTEL_CFL_U_GT3_IDS', 'coffeelake', [0x3ea5, 0x3ea6, 0x3ea7, 0x3ea8]],
  ['INTEL_AML_CFL_GT2_IDS', 'coffeelake', [0x87ca], 'Amber Lake'],
  ['INTEL_WHL_IDS', 'coffeelake', [0x3ea1, 0x3ea4, 0x3ea0, 0x3ea3, 0x3ea2], 'Whiskey Lake'],
  [
    'INTEL_CML_IDS',
    'cometlake',
    [
      0x9ba2, 0x9ba4, 0x9ba5, 0x9ba8, 0x9bc2, 0x9bc4, 0x9bc5, 0x9bc6, 0x9bc8, 0x9be6, 0x9bf6, 0x9b21, 0x9baa,
      0x9bac, 0x9b41, 0x9bca, 0x9bcc,
    ],
  ],
  [
    'INTEL_CNL_IDS',
    'cannonlake',
    [
      0x5a44, 0x5a4c, 0x5a54, 0x5a5c, 0x5a40, 0x5a41, 0x5a42, 0x5a49, 0x5a4a, 0x5a50, 0x5a51, 0x5a52, 0x5a59,
      0x5a5a,
    ],
  ],
  [
    'INTEL_ICL_IDS',
    'icelake',
    [
      0x8a50, 0x8a52, 0x8a53, 0x8a54, 0x8a56, 0x8a57, 0x8a58, 0x8a59, 0x8a5a, 0x8a5b, 0x8a5c, 0x8a70, 0x8a71,
      0x8a51, 0x8a5d,
    ],
  ],
  ['INTEL_EHL_IDS', 'elkhartlake', [0x4541, 0x4551, 0x4555, 0x4557, 0x4570, 0x4571]],
  ['INTEL_JSL_IDS', 'jasperlake', [0x4e51, 0x4e55, 0x4e57, 0x4e61, 0x4e71]],
  [
    'INTEL_TGL_IDS',
    'tigerlake',
    [0x9a60, 0x9a68, 0x9a70, 0x9a40, 0x9a49, 0x9a59, 0x9a78, 0x9ac0, 0x9ac9, 0x9ad9, 0x9af8],
  ],
  ['INTEL_RKL_IDS', 'rocketlake', [0x4c80, 0x4c8a, 0x4c8b, 0x4c8c, 0x4c90, 0x4c9a]],
  ['INTEL_ADLS_IDS', 'alderlake-s', [0x4680, 0x4682, 0x4688, 0x468a, 0x468b, 0x4690, 0x4692, 0x4693]],
  [
    'INTEL_ADLP_IDS',
    'alderlake-p',
    [
      0x46a0, 0x46a1, 0x46a2, 0x46a3, 0x46a6, 0x46a8, 0x46aa, 0x462a, 0x4626, 0x4628, 0x46b0, 0x46b1, 0x46b2,
      0x46b3, 0x46c0, 0x46c1, 0x46c2, 0x46c3,
    ],
  ],
  ['INTEL_ADLN_IDS', 'alderlake-n', [0x46d0, 0x46d1, 0x46d2, 0x46d3, 0x46d4]],
  ['INTEL_RPLS_IDS', 'raptorlake-s', [0xa780, 0xa781, 0xa782, 0xa783, 0xa788, 0xa789, 0xa78a, 0xa78b]],
  ['INTEL_RPLU_IDS', 'raptorlake-u', [0xa721, 0xa7a1, 0xa7a9, 0xa7ac, 0xa7ad]],
  ['INTEL_RPLP_IDS', 'raptorlake-p', [0xa720, 0xa7a0, 0xa7a8, 0xa7aa, 0xa7ab]],
  ['INTEL_MTL_IDS', 'meteorlake', [0x7d40, 0x7d45, 0x7d55, 0x7d60, 0x7dd5]],
  ['INTEL_ARL_IDS', 'arrowlake', [0x7d51, 0x7dd1, 0x7d41, 0x7d67, 0xb640]],
  ['INTEL_LNL_IDS', 'lunarlake', [0x6420, 0x64a0, 0x64b0]],
  [
    'INTEL_PTL_IDS',
    'pantherlake',
    [0xb080, 0xb081, 0xb082, 0xb083, 0xb084, 0xb085, 0xb086, 0xb087, 0xb08f, 0xb090, 0xb0a0, 0xb0b0],
  ],
  ['INTEL_WCL_IDS', 'wildcatlake', [0xfd80, 0xfd81]],
  ['INTEL_NVLS_IDS', 'novalake-s', [0xd740, 0xd741, 0xd742, 0xd743, 0xd744, 0xd745]],
];

const BY_ID = new Map<number, IgpuId>();
for (const [, platform, ids, variant] of ID_LISTS) {
  for (const deviceId of ids)
    BY_ID.set(deviceId, variant ? { deviceId, platform, variant } : { deviceId, platform });
}

export function lookupIgpu(deviceId: number): IgpuId | undefined {
  return BY_ID.get(deviceId);
}

/** Every known id, for tests and tooling. */
export function allIgpuIds(): IgpuId[] {
  return [...BY_ID.values()];
}

/** Number of ids in the source lists (duplicates would make this exceed allIgpuIds().length). */
export const SOURCE_ID_COUNT = ID_LISTS.reduce((sum, [, , ids]) => sum + ids.length, 0);
