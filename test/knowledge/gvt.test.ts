import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeChoices, predictGvtTypes } from '../../src/knowledge/gvt.ts';

const counts = (apertureMiB: number, graphicsVer = 9, inUse?: Record<string, number>) =>
  Object.fromEntries(predictGvtTypes({ apertureMiB, graphicsVer, inUse }).map((p) => [p.id, p.instances]));

test('a 256 MB aperture offers only V5_8 and V5_4 (1 × V5_4 or 2 × V5_8)', () => {
  assert.deepEqual(counts(256), { 'i915-GVTg_V5_8': 2, 'i915-GVTg_V5_4': 1 });
  assert.equal(
    describeChoices(predictGvtTypes({ apertureMiB: 256, graphicsVer: 9 })),
    '1 × V5_4 or 2 × V5_8',
  );
});

test('a 512 MB aperture gives 3 × V5_4 and adds V5_2; fences cap V5_8 at 7', () => {
  assert.deepEqual(counts(512), { 'i915-GVTg_V5_8': 6, 'i915-GVTg_V5_4': 3, 'i915-GVTg_V5_2': 1 });
  // (32 − 4 host fences) / 4 = 7 caps V5_8 once the aperture would allow more.
  assert.deepEqual(counts(1024), {
    'i915-GVTg_V5_8': 7,
    'i915-GVTg_V5_4': 5,
    'i915-GVTg_V5_2': 2,
    'i915-GVTg_V5_1': 1,
  });
});

test('Broadwell (graphics version 8) names its types V4', () => {
  assert.deepEqual(counts(256, 8), { 'i915-GVTg_V4_8': 2, 'i915-GVTg_V4_4': 1 });
});

test('an aperture no larger than the host reservation offers no type', () => {
  assert.deepEqual(counts(128), {});
  assert.equal(describeChoices([]), 'no vGPU');
});

test('instances in use reduce what every type still offers', () => {
  assert.deepEqual(counts(256, 9, { 'i915-GVTg_V5_4': 1 }), { 'i915-GVTg_V5_8': 0, 'i915-GVTg_V5_4': 0 });
  assert.deepEqual(counts(512, 9, { 'i915-GVTg_V5_8': 2 }), {
    'i915-GVTg_V5_8': 4,
    'i915-GVTg_V5_4': 2,
    'i915-GVTg_V5_2': 1,
  });
});
