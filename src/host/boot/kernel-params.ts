// Kernel command-line parameters: parsing, the kernel's own equivalences, and which of
// the parameters we want are missing, already there, or in conflict with the user's.
//
// Kernel facts: parameter names treat '-' and '_' alike (torvalds/linux kernel/params.c
// @ 94bd217e, parameq/dash2underscore); bool parameters accept what kstrtobool accepts
// (lib/kstrtox.c: 1/y/Y/t/T/on true, 0/n/N/f/F/off false); intel_iommu= and iommu= take
// comma-separated option lists (iommu_setup walks them with strcspn(p, ","), arch/x86/kernel/
// pci-dma.c @ bcb71abe; intel_iommu_setup likewise in drivers/iommu/intel/iommu.c @ 7e3c3883);
// when a parameter repeats, the last one wins. The names are pinned in src/knowledge/kernel.ts.

import { BOOT_OPTION, BOOT_PARAM, I915_PARAM, MODULE, moduleParam } from '../../knowledge/kernel.ts';

export interface Param {
  /** Name with '-' folded to '_', as the kernel compares it. */
  name: string;
  value: string | undefined;
  raw: string;
}

export function parseParams(cmdline: string): Param[] {
  const words = cmdline.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
  return words.map((raw) => {
    const eq = raw.indexOf('=');
    const name = (eq < 0 ? raw : raw.slice(0, eq)).replaceAll('-', '_');
    const value = eq < 0 ? undefined : raw.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    return { name, value, raw };
  });
}

/** kstrtobool: true, false, or undefined when the kernel would reject the value. */
export function kernelBool(value: string | undefined): boolean | undefined {
  if (value === undefined) return true; // a bare bool parameter means "on"
  const v = value.toLowerCase();
  if (v === 'on') return true;
  if (v === 'off') return false;
  if ('1yt'.includes(v[0] ?? '')) return true;
  if ('0nf'.includes(v[0] ?? '')) return false;
  return undefined;
}

const options = (value: string | undefined) => (value ?? '').split(',').filter(Boolean);

/** How a parameter's value is judged against the one we want. */
const SATISFIES: Record<string, (have: string | undefined, want: string) => boolean> = {
  [BOOT_PARAM.intelIommu]: (have, want) => {
    const list = options(have);
    return (
      list.lastIndexOf(want) >
      list.lastIndexOf(want === BOOT_OPTION.intelIommuOn ? 'off' : BOOT_OPTION.intelIommuOn)
    );
  },
  [BOOT_PARAM.iommu]: (have, want) => options(have).includes(want),
  [moduleParam(MODULE.i915, I915_PARAM.enableGvt)]: (have, want) => kernelBool(have) === kernelBool(want),
  // GuC submission is bit 0; -1 (auto) never enables it on the GVT-g platforms (gen 8/9).
  [moduleParam(MODULE.i915, I915_PARAM.enableGuc)]: (have, want) => {
    const n = Number(have);
    if (!Number.isInteger(n)) return false;
    // GVT-g wants GuC submission off (bit 0 clear, or the driver's automatic choice); SR-IOV wants exactly its value.
    return (Number(want) & 1) === 0 ? n < 0 || (n & 1) === 0 : n === Number(want);
  },
  // max_vfs caps the VFs the driver offers: a higher cap than ours still creates ours.
  [moduleParam(MODULE.i915, I915_PARAM.maxVfs)]: (have, want) => Number(have) >= Number(want),
  [`${MODULE.xe}.${I915_PARAM.maxVfs}`]: (have, want) => Number(have) >= Number(want),
  [BOOT_PARAM.moduleBlacklist]: (have, want) => options(have).includes(want),
};

export interface ParamPlan {
  /** Parameters to add (ours). */
  add: string[];
  /** Wanted parameters the command line already has, as the user wrote them: never ours to remove. */
  present: string[];
  /** The user's value disagrees with ours: changing it needs --force. */
  conflicts: { have: string; want: string }[];
}

export function planParams(current: string, wanted: readonly string[]): ParamPlan {
  const params = parseParams(current);
  const plan: ParamPlan = { add: [], present: [], conflicts: [] };
  for (const want of parseParams(wanted.join(' '))) {
    const have = params.findLast((p) => p.name === want.name);
    if (!have) {
      plan.add.push(want.raw);
      continue;
    }
    const judge = SATISFIES[want.name] ?? ((h: string | undefined, w: string) => h === w);
    if (judge(have.value, want.value ?? '')) plan.present.push(have.raw);
    // A list the kernel takes whole (the last module_blacklist= wins): ours extends the user's.
    else if (want.name === BOOT_PARAM.moduleBlacklist && have.value)
      plan.add.push(`${want.name}=${have.value},${want.value}`);
    else plan.conflicts.push({ have: have.raw, want: want.raw });
  }
  return plan;
}
