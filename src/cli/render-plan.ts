// Plain-text rendering of a layer plan: its checks, then its steps with commands,
// diffs and what each disturbs.

import type { Check, Step } from '../core/model.ts';
import { renderChecks } from './render-doctor.ts';

export function renderLayerPlan(title: string, checks: readonly Check[], steps: readonly Step[]): string {
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
    for (const line of (step.diff ?? '').split('\n').filter(Boolean)) lines.push(`       ${line}`);
  });
  return `${lines.join('\n')}\n`;
}
