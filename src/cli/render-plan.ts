// Plain-text rendering of a layer plan: its checks, then its steps with commands,
// diffs and what each disturbs.

import type { Check, Step } from '../core/model.ts';
import { renderChecks } from './render-doctor.ts';

export function renderLayerPlan(title: string, checks: readonly Check[], steps: readonly Step[]): string {
  const lines = [title, ''];
  if (checks.length > 0) lines.push(renderChecks(checks));
  if (steps.length === 0) lines.push('  nothing to do: converged');
  steps.forEach((step, index) => {
    const consent = step.consents?.length ? `  [needs ${step.consents.join(' ')}]` : '';
    const disturbs = step.disturbs.length > 0 ? `  [disturbs: ${step.disturbs.join(', ')}]` : '';
    lines.push(`  ${index + 1}. ${step.description}${consent}${disturbs}`);
    if (step.command) lines.push(`       $ ${step.command}`);
    for (const line of (step.diff ?? '').split('\n').filter(Boolean)) lines.push(`       ${line}`);
  });
  return `${lines.join('\n')}\n`;
}
