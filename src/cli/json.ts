// A lab plan as scripts read it inside the --json envelope (output.ts): the sections the
// text shows, not the internal object — terraform keeps its JSON plan format apart the
// same way. docs/json.md documents it.

import type { LabPlan, PlanSection, Unreachable } from '../engine/plan.ts';

/** A lab plan as `plan --json` and `apply --json` show it: the sections the text shows. */
export interface PlanView {
  /** Why nothing can be applied, when that is so. */
  refused?: string;
  /** In the order the text shows them; `layer` is token, mapping, host, vm, guest, cluster or rollout. */
  sections: PlanSection[];
  /** The parts that could not be read (their sections say `unreachable` too). */
  unreachable: Unreachable[];
  /** Hosts left out with --skip-host, with why. */
  skipped: { node: string; reason: '--skip-host' }[];
}

export async function planView(plan: LabPlan): Promise<PlanView> {
  const { planRefusal, planSections } = await import('../engine/plan.ts');
  const refused = planRefusal(plan);
  return {
    ...(refused ? { refused } : {}),
    sections: planSections(plan),
    unreachable: plan.unreachable,
    skipped: plan.skippedHosts.map((node) => ({ node, reason: '--skip-host' as const })),
  };
}
