// `node scripts/schemas.ts` rewrites docs/schemas/*.json from the zod schemas.
import { writeFileSync } from 'node:fs';
import { jsonSchemaText, PUBLISHED_SCHEMAS } from '../src/schemas.ts';

for (const [file, schema] of Object.entries(PUBLISHED_SCHEMAS)) {
  writeFileSync(`docs/schemas/${file}`, jsonSchemaText(schema));
  console.log(`wrote docs/schemas/${file}`);
}
