// Every test file is in exactly one tier (test/tiers.ts), so `npm run test:fast` leaves
// out only what it means to, and a new file is placed on purpose.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tierProblems } from './tiers.ts';

test('every test file is in exactly one tier, and every entry is a test file', () => {
  assert.deepEqual(tierProblems(), []);
});

test('a file in no tier, a file in two and an entry naming no file are each a problem', () => {
  const files = ['test/a.test.ts', 'test/b.test.ts', 'test/c.test.ts'];
  const tiers = { fast: ['test/a.test.ts', 'test/b.test.ts'], slow: ['test/b.test.ts', 'test/gone.test.ts'] };
  assert.deepEqual(tierProblems(files, tiers), [
    'test/gone.test.ts (tier slow) is no test file',
    'test/b.test.ts is in 2 tiers: fast, slow',
    'test/c.test.ts is in no tier — add it to one in test/tiers.ts',
  ]);
});
