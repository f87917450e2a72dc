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
  /** From the type's description (kvmgt.c description_show), when known. */
  lowGmMiB?: number;
  highGmMiB?: number;
  fences?: number;
}

/**
 * The counts once instances of `released` types are given back (VMs we stop to change
 * their type). The kernel counts a type's instances as the least of free low GM, high
 * GM and fences divided by the type's share (gvt/vgpu.c, intel_gvt_update_vgpu_types),
 * so the live counts only give lower bounds of what is free: the estimate never
 * promises more than the kernel will give. Without sizes, nothing is added.
 */
export function afterRelease(live: readonly LiveType[], released: readonly string[]): LiveType[] {
  const sized = live.every((t) => t.lowGmMiB && t.highGmMiB && t.fences);
  if (!sized || released.length === 0) return [...live];
  const resources = ['lowGmMiB', 'highGmMiB', 'fences'] as const;
  const free = Object.fromEntries(
    resources.map((r) => [r, Math.max(0, ...live.map((t) => t.available * (t[r] as number)))]),
  ) as Record<(typeof resources)[number], number>;
  for (const type of released) {
    const back = live.find((t) => t.type === type);
    if (back) for (const r of resources) free[r] += back[r] as number;
  }
  return live.map((t) => ({
    ...t,
    available: Math.min(...resources.map((r) => Math.floor(free[r] / (t[r] as number)))),
  }));
}

export type MdevChoice =
  | { ok: true; type: string; available: number }
  | { ok: false; reason: string; suggestions: string[] };

/** The vGPU size a type stands for: its name ends in how many fit the reference GPU. */
function share(type: string): number {
  return Number(/_(\d+)$/.exec(type)?.[1] ?? Number.NaN);
}

/** How many new instances of a type the plan needs (VMs already holding one need none). */
export type Need = number | ((type: string) => number);

export interface HostHints {
  apertureMiB?: number;
  graphicsVer?: number;
}

export function chooseMdevType(live: readonly LiveType[], need: Need, host: HostHints = {}): MdevChoice {
  const needOf = typeof need === 'number' ? () => need : need;
  // Largest vGPU first: _1 (a whole GPU's worth) before _2, _4, _8.
  const bySize = [...live]
    .filter((t) => Number.isFinite(share(t.type)))
    .sort((a, b) => share(a.type) - share(b.type));
  const fit = bySize.find((t) => t.available >= needOf(t.type));
  if (fit) return { ok: true, type: fit.type, available: fit.available };
  const vmCount = Math.max(0, ...bySize.map((t) => needOf(t.type)), typeof need === 'number' ? need : 0);
  return refusal(bySize, vmCount, host);
}

/** A type the user named: it fits, or the refusal says what would (a smaller type first). */
export function checkMdevType(
  live: readonly LiveType[],
  type: string,
  need: Need,
  host: HostHints = {},
): MdevChoice {
  const needOf = typeof need === 'number' ? () => need : need;
  const named = live.find((t) => t.type === type);
  if (!named) {
    return {
      ok: false,
      reason: `this GPU offers no mdev type ${type} (it has: ${live.map((t) => t.type).join(', ') || 'none'})`,
      suggestions: ['use vgpu: auto, or one of the listed types'],
    };
  }
  if (named.available >= needOf(type)) return { ok: true, type, available: named.available };
  const refused = refusal([named], needOf(type), host);
  if (refused.ok) return refused;
  const smaller = chooseMdevType(live, need);
  if (smaller.ok) refused.suggestions.unshift(`use the smaller ${smaller.type}, which fits (or vgpu: auto)`);
  return refused;
}

function refusal(bySize: readonly LiveType[], vmCount: number, host: HostHints): MdevChoice {
  const best = bySize.reduce<LiveType | undefined>(
    (most, t) => (!most || t.available > most.available ? t : most),
    undefined,
  );
  const suggestions: string[] = [];
  if (best && best.available > 0)
    suggestions.push(
      `plan at most ${best.available} VM${best.available === 1 ? '' : 's'} here (${best.type} has ${best.available} free)`,
    );
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
  } else {
    suggestions.push(
      'raise the iGPU aperture in the BIOS (e.g. to 512 MB or 1024 MB): more and larger vGPUs',
    );
  }
  const counts = bySize.map((t) => `${t.type} ${t.available}`).join(', ') || 'no mdev types';
  return {
    ok: false,
    reason: `${vmCount} VMs need a vGPU each, but free instances are: ${counts}`,
    suggestions,
  };
}
