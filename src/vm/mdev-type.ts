// Choosing the GVT-g mdev type for the VMs planned on one host (`vgpu: auto`): the
// largest vGPU such that every VM gets one. Counts come from the host's live
// `available` (Proxmox /nodes/{node}/hardware/pci/{id}/mdev), which already accounts
// for vGPUs other VMs hold. When nothing fits, say what would: a smaller type, fewer
// VMs, or a bigger BIOS aperture (predicted with the kernel's formula).

import { type GvtPrediction, predictGvtTypes } from '../knowledge/gvt.ts';

export interface LiveType {
  /** e.g. `i915-GVTg_V5_4` */
  type: string;
  available: number;
}

export type MdevChoice =
  | { ok: true; type: string; available: number }
  | { ok: false; reason: string; suggestions: string[] };

/** The vGPU size a type stands for: its name ends in how many fit the reference GPU. */
function share(type: string): number {
  return Number(/_(\d+)$/.exec(type)?.[1] ?? Number.NaN);
}

export function chooseMdevType(
  live: readonly LiveType[],
  vmCount: number,
  host: { apertureMiB?: number; graphicsVer?: number } = {},
): MdevChoice {
  // Largest vGPU first: _1 (a whole GPU's worth) before _2, _4, _8.
  const bySize = [...live]
    .filter((t) => Number.isFinite(share(t.type)))
    .sort((a, b) => share(a.type) - share(b.type));
  const fit = bySize.find((t) => t.available >= vmCount);
  if (fit) return { ok: true, type: fit.type, available: fit.available };

  const best = bySize.reduce<LiveType | undefined>(
    (most, t) => (!most || t.available > most.available ? t : most),
    undefined,
  );
  const suggestions: string[] = [];
  if (best && best.available > 0)
    suggestions.push(`plan at most ${best.available} VMs here (${best.type} has ${best.available} free)`);
  if (host.apertureMiB !== undefined && host.graphicsVer !== undefined) {
    for (const aperture of [512, 1024].filter((a) => a > (host.apertureMiB as number))) {
      const predicted: GvtPrediction | undefined = predictGvtTypes({
        apertureMiB: aperture,
        graphicsVer: host.graphicsVer,
      })
        .filter((p) => p.instances >= vmCount)
        .sort((a, b) => share(a.name) - share(b.name))[0];
      if (predicted) {
        suggestions.push(
          `raise the BIOS aperture to ${aperture} MB: ${predicted.instances} × ${predicted.name.replace('GVTg_', '')} (fewer in use by other VMs)`,
        );
        break;
      }
    }
  }
  const counts = bySize.map((t) => `${t.type} ${t.available}`).join(', ') || 'no mdev types';
  return {
    ok: false,
    reason: `${vmCount} VMs need a vGPU each, but free instances are: ${counts}`,
    suggestions,
  };
}
