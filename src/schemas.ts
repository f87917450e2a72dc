// JSON Schemas published in docs/schemas/ for editors and other tools, generated
// from the zod schemas so the two cannot drift (a test compares them).

import { z } from 'zod';
import { JsonEnvelopeSchema } from './cli/json-schema.ts';
import { LabSchema } from './config/lab.ts';
import { doctorReportSchema } from './host/doctor-schema.ts';

/**
 * Each schema with the side it describes: what a user writes (`input`: a field with a
 * default may be left out) or what igpu-split prints (`output`: every defaulted field is there).
 */
export const PUBLISHED_SCHEMAS = {
  'doctor-report.schema.json': { schema: doctorReportSchema, io: 'output' },
  'lab.schema.json': { schema: LabSchema, io: 'input' },
  'json-envelope.schema.json': { schema: JsonEnvelopeSchema, io: 'output' },
} as const satisfies Record<string, { schema: z.ZodType; io: 'input' | 'output' }>;

export function jsonSchemaText({ schema, io }: { schema: z.ZodType; io: 'input' | 'output' }): string {
  return `${JSON.stringify(z.toJSONSchema(schema, { target: 'draft-2020-12', io }), null, 2)}\n`;
}
