// The smoke pod: one per GPU node, asking for one gpu.intel.com/i915 (or gpu.intel.com/xe),
// listing /dev/dri, opening each render node read-write and, when the image has it, running
// vainfo on each. Its log is parsed into a verdict; the pod is deleted afterwards.
//
// The verdict says which proof it got: "render node opened" (busybox: the device is there
// and the container may use it) or "VA-API profiles listed" (an image with vainfo: the
// driver answered through the media stack). Only the second says the GPU renders.

import type { Check } from '../core/model.ts';

export const SMOKE_MARK = 'igpu-split-smoke';

/** What the container runs; each line it prints starts with the mark so the parser can find it. */
export const SMOKE_SCRIPT = [
  `echo "${SMOKE_MARK} dri: $(ls /dev/dri 2>/dev/null | tr '\\n' ' ')"`,
  // `<>` opens read-write (POSIX sh), as a client of the render node does; nothing is written.
  'for n in /dev/dri/renderD*; do',
  `  [ -e "$n" ] && { if ( : <> "$n" ) 2>/dev/null; then echo "${SMOKE_MARK} open $n ok"; else echo "${SMOKE_MARK} open $n failed"; fi; }`,
  'done',
  'if command -v vainfo >/dev/null 2>&1; then',
  '  for n in /dev/dri/renderD*; do',
  `    echo "${SMOKE_MARK} vainfo $n"`,
  `    vainfo --display drm --device "$n" 2>&1 | sed "s/^/${SMOKE_MARK} | /"`,
  '  done',
  `else echo "${SMOKE_MARK} vainfo: not in this image"; fi`,
].join('\n');

export interface SmokeResult {
  dri: string[];
  /** Render nodes the container opened read-write, and those it could not (absent: an older log without the lines). */
  opened?: string[];
  notOpened?: string[];
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
  const opens = lines.filter((l) => l.startsWith(`${SMOKE_MARK} open `));
  if (opens.length > 0) {
    const node = (l: string) => (l.split(' ')[2] ?? '').replace(/^.*\//, '');
    result.opened = opens.filter((l) => l.endsWith(' ok')).map(node);
    result.notOpened = opens.filter((l) => l.endsWith(' failed')).map(node);
  }
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

/** `gpu`: what the node's VM has, for the words (`VF` on SR-IOV, else `vGPU`). */
export function smokeCheck(node: string, log: string, gpu: 'VF' | 'vGPU' = 'vGPU'): Check {
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
  if (result.notOpened && result.notOpened.length > 0 && result.opened?.length === 0) {
    return {
      id,
      status: 'fail',
      evidence: `the container on ${node} sees ${render.join(' ')} but could not open it read-write`,
      fix: 'the device plugin mounted the node without access: check the plugin pod log and the container’s device cgroup',
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
  if (result.vainfo)
    return {
      id,
      status: 'pass',
      evidence: `VA-API profiles listed: a container on ${node} got ${render.join(' ')} and vainfo lists ${result.vainfo.profiles} profiles (${result.vainfo.driver ?? 'driver'}): the ${gpu} renders`,
    };
  const opened = result.opened && result.opened.length > 0;
  return {
    id,
    status: 'pass',
    evidence: `${opened ? 'render node opened' : 'render node listed'}: a container on ${node} ${opened ? `opened ${result.opened?.join(' ')} read-write` : `sees ${render.join(' ')}`}; no vainfo in the image: the ${gpu} is reachable, rendering is unproven (a smokeImage with vainfo lists its VA-API profiles)`,
  };
}
