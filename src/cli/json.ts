// What every command prints with --json: one envelope, versioned apart from the library's
// types (terraform keeps its JSON plan format apart the same way), so a script reading it
// keeps working when the internals move. docs/json.md documents it; the JSON Schema of
// the envelope is docs/schemas/json-envelope.schema.json (from json-schema.ts).

import type { LabPlan, PlanSection } from '../engine/plan.ts';

/** Raised only for a change a script must be told about (a key removed or its meaning changed). */
export const JSON_FORMAT_VERSION = 1;

/** What every --json output is; json-schema.ts describes it for docs/schemas. */
export interface JsonEnvelope {
  format: 'igpu-split';
  version: typeof JSON_FORMAT_VERSION;
  command: string;
  result: unknown;
}

/** The envelope, as the text a command prints. */
export function jsonText(command: string, result: unknown): string {
  const envelope: JsonEnvelope = {
    format: 'igpu-split',
    version: JSON_FORMAT_VERSION,
    command,
    result,
  };
  return `${JSON.stringify(envelope, null, 2)}\n`;
}

/** A lab plan as `plan --json` and `apply --json` show it: the sections the text shows. */
export interface PlanView {
  /** Why nothing can be applied, when that is so. */
  refused?: string;
  /** In the order the text shows them; `layer` is token, mapping, host, vm, guest or cluster. */
  sections: PlanSection[];
}

export async function planView(plan: LabPlan): Promise<PlanView> {
  const { planRefusal, planSections } = await import('../engine/plan.ts');
  const refused = planRefusal(plan);
  return {
    ...(refused ? { refused } : {}),
    sections: planSections(plan),
  };
}
