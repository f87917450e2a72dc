// Intel family-6 CPU model numbers → codename.
//
// Source: Linux v6.12, arch/x86/include/asm/intel-family.h (INTEL_* / INTEL_FAM6_* model
// numbers and the stepping notes under KABYLAKE_L and KABYLAKE), plus Intel ARK for which
// Core generation a codename was sold as. Kaby Lake, Coffee Lake, Whiskey Lake and Amber
// Lake share model numbers 0x8E and 0x9E; the kernel's notes tell them apart by stepping:
//   0x8E: 9 Amber Lake, 10 Coffee Lake, 11–12 Whiskey Lake (otherwise Kaby Lake)
//   0x9E: 10–13 Coffee Lake (12–13 are the 9th-gen Coffee Lake Refresh parts)

export type CpuSegment = 'desktop' | 'mobile' | 'server' | 'atom' | 'hybrid';

export interface IntelCpuModel {
  model: number;
  codename: string;
  segment: CpuSegment;
  /** Core generation the codename was sold as, when it maps to exactly one. */
  coreGeneration?: number;
}

type Row = [model: number, codename: string, segment: CpuSegment, coreGeneration?: number];

const FAMILY_6: Row[] = [
  [0x3d, 'Broadwell', 'mobile', 5],
  [0x47, 'Broadwell', 'desktop', 5],
  [0x4f, 'Broadwell-X', 'server'],
  [0x56, 'Broadwell-D', 'server'],
  [0x4e, 'Skylake', 'mobile', 6],
  [0x5e, 'Skylake', 'desktop', 6],
  [0x55, 'Skylake-X', 'server'],
  [0x8e, 'Kaby Lake', 'mobile', 7],
  [0x9e, 'Kaby Lake', 'desktop', 7],
  [0xa5, 'Comet Lake', 'desktop', 10],
  [0xa6, 'Comet Lake', 'mobile', 10],
  [0x66, 'Cannon Lake', 'mobile', 8],
  [0x6a, 'Ice Lake-X', 'server'],
  [0x6c, 'Ice Lake-D', 'server'],
  [0x7d, 'Ice Lake', 'mobile', 10],
  [0x7e, 'Ice Lake', 'mobile', 10],
  [0x8c, 'Tiger Lake', 'mobile', 11],
  [0x8d, 'Tiger Lake', 'mobile', 11],
  [0xa7, 'Rocket Lake', 'desktop', 11],
  [0x8f, 'Sapphire Rapids', 'server'],
  [0xcf, 'Emerald Rapids', 'server'],
  [0xad, 'Granite Rapids', 'server'],
  [0xae, 'Granite Rapids-D', 'server'],
  [0x8a, 'Lakefield', 'hybrid'],
  [0x97, 'Alder Lake', 'hybrid', 12],
  [0x9a, 'Alder Lake', 'hybrid', 12],
  [0xb7, 'Raptor Lake', 'hybrid', 13],
  [0xba, 'Raptor Lake', 'hybrid', 13],
  [0xbf, 'Raptor Lake', 'hybrid', 13],
  [0xaa, 'Meteor Lake', 'hybrid'],
  [0xac, 'Meteor Lake', 'hybrid'],
  [0xc5, 'Arrow Lake', 'hybrid'],
  [0xc6, 'Arrow Lake', 'hybrid'],
  [0xb5, 'Arrow Lake', 'hybrid'],
  [0xbd, 'Lunar Lake', 'hybrid'],
  [0xcc, 'Panther Lake', 'hybrid'],
  [0x5c, 'Apollo Lake', 'atom'],
  [0x5f, 'Denverton', 'atom'],
  [0x7a, 'Gemini Lake', 'atom'],
  [0x86, 'Snow Ridge', 'atom'],
  [0x96, 'Elkhart Lake', 'atom'],
  [0x9c, 'Jasper Lake', 'atom'],
  [0xbe, 'Alder Lake-N', 'atom'],
  [0xaf, 'Sierra Forest', 'server'],
];

const BY_MODEL = new Map(
  FAMILY_6.map(([model, codename, segment, coreGeneration]) => [
    model,
    coreGeneration === undefined
      ? { model, codename, segment }
      : { model, codename, segment, coreGeneration },
  ]),
);

/** The codename for an Intel CPU; stepping refines the shared 0x8E / 0x9E models. */
export function lookupIntelCpuModel(
  family: number,
  model: number,
  stepping?: number,
): IntelCpuModel | undefined {
  if (family !== 6) return undefined;
  const base = BY_MODEL.get(model);
  if (!base) return undefined;
  if (model === 0x8e || model === 0x9e) {
    if (stepping === undefined) return { model, codename: 'Kaby Lake / Coffee Lake', segment: base.segment };
    if (model === 0x8e && stepping === 9)
      return { model, codename: 'Amber Lake', segment: 'mobile', coreGeneration: 8 };
    if (model === 0x8e && stepping === 10)
      return { model, codename: 'Coffee Lake', segment: 'mobile', coreGeneration: 8 };
    if (model === 0x8e && (stepping === 11 || stepping === 12)) {
      return { model, codename: 'Whiskey Lake', segment: 'mobile', coreGeneration: 8 };
    }
    if (model === 0x9e && stepping >= 10 && stepping <= 13) {
      return stepping >= 12
        ? { model, codename: 'Coffee Lake Refresh', segment: 'desktop', coreGeneration: 9 }
        : { model, codename: 'Coffee Lake', segment: 'desktop', coreGeneration: 8 };
    }
  }
  return base;
}

/**
 * The Core generation in a /proc/cpuinfo model name. Intel's numbering puts it in the
 * leading digits of the processor number after the brand modifier: i5-8500T → 8,
 * i7-6700K → 6, i5-13500 → 13. Generation 10 and later take two digits, also in the
 * four-digit mobile numbers (i5-1135G7 → 11, i7-1065G7 → 10); no earlier part has a
 * four-digit number starting with 1, so a leading 1 always means two digits. Later names ("Core Ultra 7 155H", "N100",
 * Celeron, Pentium, Xeon) carry no generation and give undefined.
 */
export function coreGenerationFromModelName(modelName: string): number | undefined {
  const numbered = /\b(\d{1,2})th Gen Intel/i.exec(modelName);
  if (numbered?.[1]) return Number(numbered[1]);
  const match = /Core\(TM\) i[3579]-(\d{4,5})[A-Z0-9]*/i.exec(modelName);
  if (!match?.[1]) return undefined;
  const digits = match[1];
  return Number(digits.length === 5 || digits.startsWith('1') ? digits.slice(0, 2) : digits.slice(0, 1));
}
