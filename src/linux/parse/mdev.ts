// The `description` attribute of a GVT-g mdev type. The kernel prints it as
//   low_gm_size: %dMB\nhigh_gm_size: %dMB\nfence: %d\nresolution: %s\nweight: %d\n
// (drivers/gpu/drm/i915/gvt/kvmgt.c, description_show).

export interface MdevDescription {
  lowGmMiB: number | undefined;
  highGmMiB: number | undefined;
  fences: number | undefined;
  resolution: string | undefined;
  weight: number | undefined;
}

export function parseMdevDescription(text: string): MdevDescription {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([a-z_]+)\s*:\s*(.*?)\s*$/.exec(line);
    if (match?.[1] && match[2] !== undefined) fields.set(match[1], match[2]);
  }
  return {
    lowGmMiB: mib(fields.get('low_gm_size')),
    highGmMiB: mib(fields.get('high_gm_size')),
    fences: int(fields.get('fence')),
    resolution: fields.get('resolution') || undefined,
    weight: int(fields.get('weight')),
  };
}

function mib(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^(\d+)\s*MB$/i.exec(value);
  return match?.[1] ? Number(match[1]) : undefined;
}

function int(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}
