// JSON Schemas published in docs/schemas/ for editors and other tools, generated
// from the zod schemas so the two cannot drift (a test compares them).

import { z } from 'zod';
import { JsonEnvelopeSchema } from './cli/json-schema.ts';
import { LabSchema } from './config/lab.ts';
import { doctorReportSchema } from './host/doctor-schema.ts';

export const PUBLISHED_SCHEMAS = {
  'doctor-report.schema.json': doctorReportSchema,
  'lab.schema.json': LabSchema,
  'json-envelope.schema.json': JsonEnvelopeSchema,
} as const;

export function jsonSchemaText(schema: z.ZodType): string {
  return `${JSON.stringify(z.toJSONSchema(schema, { target: 'draft-2020-12' }), null, 2)}\n`;
}
