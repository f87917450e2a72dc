import assert from 'node:assert/strict';
import { test } from 'node:test';
import { afterRelease, chooseMdevType } from '../../src/vm/mdev-type.ts';

const live256 = [
  { type: 'i915-GVTg_V5_8', available: 2 },
  { type: 'i915-GVTg_V5_4', available: 1 },
];

test('auto picks the largest vGPU that still gives every VM one', () => {
  assert.deepEqual(chooseMdevType(live256, 1), { ok: true, type: 'i915-GVTg_V5_4', available: 1 });
  assert.deepEqual(chooseMdevType(live256, 2), { ok: true, type: 'i915-GVTg_V5_8', available: 2 });
  const live1024 = [
    { type: 'i915-GVTg_V5_8', available: 7 },
    { type: 'i915-GVTg_V5_4', available: 5 },
    { type: 'i915-GVTg_V5_2', available: 2 },
    { type: 'i915-GVTg_V5_1', available: 1 },
  ];
  assert.deepEqual(chooseMdevType(live1024, 3), { ok: true, type: 'i915-GVTg_V5_4', available: 5 });
});

test('when nothing fits: the reason, fewer VMs, and the aperture that would do', () => {
  const choice = chooseMdevType(live256, 3, { apertureMiB: 256, graphicsVer: 9 });
  assert.equal(choice.ok, false);
  if (choice.ok) return;
  assert.match(
    choice.reason,
    /3 VMs need a vGPU each, but free instances are: i915-GVTg_V5_4 1, i915-GVTg_V5_8 2/,
  );
  assert.deepEqual(choice.suggestions, [
    'plan at most 2 VMs here (i915-GVTg_V5_8 has 2 free)',
    'raise the BIOS aperture to 512 MB: 3 × V5_4 (fewer in use by other VMs)',
  ]);
  const none = chooseMdevType([], 1);
  assert.equal(none.ok, false);
  assert.match(none.ok ? '' : none.reason, /no mdev types/);
});

test('instances a VM gives back when it changes type are counted, never more than the kernel gives', () => {
  // UHD 630, 256 MB aperture, one V5_4 in use (sizes as kvmgt describes them).
  const live = [
    { type: 'i915-GVTg_V5_8', available: 0, lowGmMiB: 64, highGmMiB: 384, fences: 4 },
    { type: 'i915-GVTg_V5_4', available: 0, lowGmMiB: 128, highGmMiB: 512, fences: 4 },
  ];
  assert.deepEqual(
    afterRelease(live, ['i915-GVTg_V5_4']).map((t) => t.available),
    [1, 1],
  );
  assert.deepEqual(afterRelease(live, []), live);
  // Without the sizes nothing can be said: the live counts stand.
  assert.deepEqual(afterRelease(live256, ['i915-GVTg_V5_4']), live256);
});
