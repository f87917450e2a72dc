// The smoke pod: one per GPU node, asking for one gpu.intel.com/i915, listing /dev/dri
// and, when the image has it, running vainfo on each render node. Its log is parsed into
// a verdict; the pod is deleted afterwards.

import type { Check } from '../core/model.ts';

export const SMOKE_MARK = 'igpu-split-smoke';

/** What the container runs; each line it prints starts with the mark so the parser can find it. */
export const SMOKE_SCRIPT = [
  `echo "${SMOKE_MARK} dri: $(ls /dev/dri 2>/dev/null | tr '\\n' ' ')"`,
  'if command -v vainfo >/dev/null 2>&1; then',
  '  for n in /dev/dri/renderD*; do',
  `    echo "${SMOKE_MARK} vainfo $n"`,
  `    vainfo --display drm --device "$n" 2>&1 | sed "s/^/${SMOKE_MARK} | /"`,
  '  done',
  `else echo "${SMOKE_MARK} vainfo: not in this image"; fi`,
].join('\n');

export interface SmokeResult {
  dri: string[];
  /** undefined: vainfo not run (not in the image). */
  vainfo?: { ok: boolean; driver?: string; profiles: number; error?: string };
}

export function parseSmokeLog(log: string): SmokeResult | undefined {
  const lines = log.split('\n').filter((l) => l.startsWith(SMOKE_MARK));
  const dri = lines.find((l) => l.startsWith(`${SMOKE_MARK} dri:`));
  if (!dri) return undefined;
  const result: SmokeResult = {
    dri: dri.slice(`${SMOKE_MARK} dri:`.length).trim().split(/\s+/).filter(Boolean),
  };
  if (lines.some((l) => l.includes('vainfo: not in this image'))) return result;
  const va = lines.filter((l) => l.startsWith(`${SMOKE_MARK} | `)).map((l) => l.slice(SMOKE_MARK.length + 3));
  if (va.length > 0) {
    const driver = va.find((l) => /Driver version:/.test(l))?.replace(/^.*Driver version:\s*/, '');
    const profiles = va.filter((l) => /VAProfile\w+\s*:\s*VAEntrypoint/.test(l)).length;
    const error = va.find((l) => /failed|error/i.test(l));
    result.vainfo = { ok: profiles > 0, driver, profiles, ...(profiles === 0 && error ? { error } : {}) };
  }
  return result;
}

export function smokeCheck(node: string, log: string): Check {
  const id = `cluster.${node}.smoke`;
  const result = parseSmokeLog(log);
  if (!result) {
    return {
      id,
      status: 'fail',
      evidence: `the smoke pod on ${node} printed no /dev/dri line (its log: ${log.trim().slice(0, 80) || 'empty'})`,
      fix: 'check the smoke image has sh and ls (smokeImage in the lab file)',
    };
  }
  const render = result.dri.filter((n) => /^renderD\d+$/.test(n));
  if (render.length === 0) {
    return {
      id,
      status: 'fail',
      evidence: `the container on ${node} sees /dev/dri: ${result.dri.join(' ') || 'nothing'}`,
      fix: 'the device plugin gave no render node: check its pod log on that node',
    };
  }
  if (result.vainfo && !result.vainfo.ok) {
    return {
      id,
      status: 'fail',
      evidence: `${render.join(' ')} present, but vainfo failed: ${result.vainfo.error ?? 'no profiles'}`,
      fix: 'the guest driver is loaded but VA-API does not work: check the guest layer (i915 firmware, the media driver in the image)',
    };
  }
  return {
    id,
    status: 'pass',
    evidence: `a container on ${node} sees ${render.join(' ')}${result.vainfo ? `; vainfo: ${result.vainfo.driver ?? 'driver'} with ${result.vainfo.profiles} profiles` : ' (no vainfo in the image)'}`,
  };
}
