// GVT-g vGPU types and how many instances of each the kernel will offer.
//
// Source: Linux v6.12, drivers/gpu/drm/i915/gvt/
//   vgpu.c  intel_vgpu_configs[]       – the type table below (low/high GM, fences, weight, EDID)
//   vgpu.c  intel_gvt_init_vgpu_types  – types are created in table order and the loop
//                                        stops at the first one whose low GM does not fit
//   kvmgt.c intel_vgpu_get_available   – instances = min(low avail / low, high avail / high,
//                                        fences avail / fences)
//   gvt.h   HOST_LOW_GM_SIZE 128 MiB, HOST_HIGH_GM_SIZE 384 MiB, HOST_FENCE 4
//   The type name is "GVTg_V4_<n>" on graphics version 8 (Broadwell) and "GVTg_V5_<n>" after;
//   sysfs shows it as "i915-GVTg_V5_<n>" under the GPU's mdev_supported_types.
// "Low GM" is the CPU-visible aperture (PCI BAR 2, set by the BIOS "Aperture Size" option,
// not by DVMT pre-allocation); "high GM" is the rest of the global GTT address space.

export interface GvtTypeConfig {
  /** Name suffix: the number of such vGPUs the type was sized for. */
  suffix: '8' | '4' | '2' | '1';
  lowGmMiB: number;
  highGmMiB: number;
  fences: number;
  weight: number;
  resolution: string;
}

export const GVT_TYPE_CONFIGS: readonly GvtTypeConfig[] = [
  { suffix: '8', lowGmMiB: 64, highGmMiB: 384, fences: 4, weight: 2, resolution: '1024x768' },
  { suffix: '4', lowGmMiB: 128, highGmMiB: 512, fences: 4, weight: 4, resolution: '1920x1200' },
  { suffix: '2', lowGmMiB: 256, highGmMiB: 1024, fences: 4, weight: 8, resolution: '1920x1200' },
  { suffix: '1', lowGmMiB: 512, highGmMiB: 2048, fences: 4, weight: 16, resolution: '1920x1200' },
];

export const HOST_LOW_GM_MIB = 128;
export const HOST_HIGH_GM_MIB = 384;
export const HOST_FENCES = 4;

/**
 * Global GTT address space of gen8/gen9 iGPUs: the BIOS reserves an 8 MiB GTT
 * (GGMS), i.e. 1 Mi 8-byte PTEs mapping 4 KiB pages = 4 GiB
 * (Linux v6.12 drivers/gpu/drm/i915/gt/intel_ggtt.c, gen8_gmch_probe / gen8_get_total_gtt_size).
 */
export const DEFAULT_GGTT_MIB = 4096;
/** Fence registers on gen7+ (Linux v6.12 drivers/gpu/drm/i915/gt/intel_ggtt_fencing.c, intel_ggtt_init_fences). */
export const DEFAULT_FENCES = 32;

export interface GvtPrediction {
  /** sysfs directory name, e.g. `i915-GVTg_V5_4`. */
  id: string;
  /** The type's `name`, e.g. `GVTg_V5_4`. */
  name: string;
  config: GvtTypeConfig;
  instances: number;
}

export interface GvtInputs {
  apertureMiB: number;
  graphicsVer: number;
  ggttMiB?: number;
  fences?: number;
  /** Mediated devices that already exist, by type id, so the prediction matches live `available_instances`. */
  inUse?: Readonly<Record<string, number>>;
}

export function gvtTypeName(graphicsVer: number, suffix: string): string {
  return `GVTg_V${graphicsVer === 8 ? 4 : 5}_${suffix}`;
}

/** The types the kernel creates for this aperture, with the instances each could still offer. */
export function predictGvtTypes(inputs: GvtInputs): GvtPrediction[] {
  const ggtt = inputs.ggttMiB ?? DEFAULT_GGTT_MIB;
  const fences = inputs.fences ?? DEFAULT_FENCES;
  const lowTotal = inputs.apertureMiB - HOST_LOW_GM_MIB;
  const highTotal = ggtt - inputs.apertureMiB - HOST_HIGH_GM_MIB;
  const fenceTotal = fences - HOST_FENCES;

  const types: { id: string; name: string; config: GvtTypeConfig }[] = [];
  for (const config of GVT_TYPE_CONFIGS) {
    if (lowTotal <= 0 || Math.floor(lowTotal / config.lowGmMiB) === 0) break;
    const name = gvtTypeName(inputs.graphicsVer, config.suffix);
    types.push({ id: `i915-${name}`, name, config });
  }

  let lowUsed = 0;
  let highUsed = 0;
  let fencesUsed = 0;
  for (const type of types) {
    const count = inputs.inUse?.[type.id] ?? 0;
    lowUsed += count * type.config.lowGmMiB;
    highUsed += count * type.config.highGmMiB;
    fencesUsed += count * type.config.fences;
  }
  return types.map((type) => ({
    ...type,
    instances: Math.max(
      0,
      Math.min(
        Math.floor((lowTotal - lowUsed) / type.config.lowGmMiB),
        Math.floor((highTotal - highUsed) / type.config.highGmMiB),
        Math.floor((fenceTotal - fencesUsed) / type.config.fences),
      ),
    ),
  }));
}

/** "1 × V5_4 or 2 × V5_8": the choices, largest vGPU first. */
export function describeChoices(predictions: readonly GvtPrediction[]): string {
  const offered = predictions.filter((p) => p.instances > 0).reverse();
  if (offered.length === 0) return 'no vGPU';
  return offered.map((p) => `${p.instances} × ${p.name.replace('GVTg_', '')}`).join(' or ');
}
