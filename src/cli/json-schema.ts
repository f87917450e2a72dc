// The JSON Schema of the --json envelope (docs/schemas/json-envelope.schema.json), apart
// from json.ts so that printing JSON does not load zod.

import { z } from 'zod';
import { JSON_FORMAT_VERSION } from './output.ts';

export const JsonEnvelopeSchema = z
  .strictObject({
    format: z.literal('igpu-split').describe('Always igpu-split: this is one of our envelopes'),
    version: z
      .literal(JSON_FORMAT_VERSION)
      .describe('The envelope format; raised only for an incompatible change'),
    command: z.string().min(1).describe('The command that printed it, e.g. "plan" or "vm apply"'),
    result: z.unknown().describe('What the command found or did; docs/json.md lists each command'),
  })
  .describe('What every igpu-split command prints with --json');
