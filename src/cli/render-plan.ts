// Plain-text rendering of a layer plan: its checks, then its steps with commands,
// diffs and what each disturbs.

import type { Check, Step } from '../core/model.ts';
import { renderChecks } from './render-doctor.ts';

/**
 * Diffs a plan already showed, by their text: where first (a lab plan writes the same files on
 * many machines — the kernel guard is 300 lines — and each long diff is printed once).
 */
export type ShownDiffs = Map<string, string>;

/** Diffs shorter than this are printed every time: they are read faster than a reference. */
const LONG_DIFF_LINES = 20;

export function renderLayerPlan(
  title: string,
  checks: readonly Check[],
  steps: readonly Step[],
  shown?: ShownDiffs,
): string {
  const lines = [title, ''];
  if (checks.length > 0) lines.push(renderChecks(checks));
  // A plan held up by a failing check is not converged, however empty it is.
  if (steps.length === 0)
    lines.push(
      checks.some((c) => c.status === 'fail')
        ? '  nothing can be applied until the failing checks above are fixed'
        : '  nothing to do: converged',
    );
  steps.forEach((step, index) => {
    const consent = step.consents?.length ? `  [needs ${step.consents.join(' ')}]` : '';
    const disturbs = step.disturbs.length > 0 ? `  [disturbs: ${step.disturbs.join(', ')}]` : '';
    lines.push(`  ${index + 1}. ${step.description}${consent}${disturbs}`);
    if (step.command) lines.push(`       $ ${step.command}`);
    const diff = (step.diff ?? '').split('\n').filter(Boolean);
    const first = step.diff ? shown?.get(step.diff) : undefined;
    if (first) lines.push(`       (the same change as ${first}, shown there)`);
    else for (const line of diff) lines.push(`       ${line}`);
    if (step.diff && shown && !first && diff.length >= LONG_DIFF_LINES)
      shown.set(step.diff, `${title}, step ${index + 1}`);
  });
  return `${lines.join('\n')}\n`;
}
