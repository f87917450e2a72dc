import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { jsonSchemaText, PUBLISHED_SCHEMAS } from '../../src/schemas.ts';

test('published JSON Schemas are current (regenerate with npm run schemas)', async () => {
  for (const [file, schema] of Object.entries(PUBLISHED_SCHEMAS)) {
    const committed = await readFile(new URL(`../../docs/schemas/${file}`, import.meta.url), 'utf8');
    assert.equal(committed, jsonSchemaText(schema), file);
  }
});
