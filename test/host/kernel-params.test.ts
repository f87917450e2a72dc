import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelBool, parseParams, planParams } from '../../src/host/boot/kernel-params.ts';

const GVT = ['intel_iommu=on', 'iommu=pt', 'i915.enable_gvt=1'];

test('names fold - to _ and quoted values stay whole', () => {
  assert.deepEqual(parseParams('quiet i915.enable-gvt=1 foo="a b"'), [
    { name: 'quiet', value: undefined, raw: 'quiet' },
    { name: 'i915.enable_gvt', value: '1', raw: 'i915.enable-gvt=1' },
    { name: 'foo', value: 'a b', raw: 'foo="a b"' },
  ]);
});

test('kstrtobool', () => {
  for (const v of ['1', 'y', 'Y', 'yes', 't', 'true', 'on', undefined])
    assert.equal(kernelBool(v), true, String(v));
  for (const v of ['0', 'n', 'N', 'no', 'f', 'false', 'off']) assert.equal(kernelBool(v), false, v);
  assert.equal(kernelBool('maybe'), undefined);
});

test('a bare host gets all three parameters; the user’s quiet is untouched', () => {
  assert.deepEqual(planParams('BOOT_IMAGE=/boot/vmlinuz root=/dev/mapper/pve-root ro quiet', GVT), {
    add: GVT,
    present: [],
    conflicts: [],
  });
});

test('what the user already has counts, in any spelling the kernel accepts', () => {
  assert.deepEqual(planParams('quiet intel_iommu=sm_on,on iommu=pt,nopt i915.enable-gvt=Y', GVT), {
    add: [],
    present: ['intel_iommu=sm_on,on', 'iommu=pt,nopt', 'i915.enable-gvt=Y'],
    conflicts: [],
  });
});

test('conflicting user values are conflicts, judged by the last occurrence', () => {
  assert.deepEqual(planParams('intel_iommu=off i915.enable_gvt=0', GVT), {
    add: ['iommu=pt'],
    present: [],
    conflicts: [
      { have: 'intel_iommu=off', want: 'intel_iommu=on' },
      { have: 'i915.enable_gvt=0', want: 'i915.enable_gvt=1' },
    ],
  });
  assert.deepEqual(planParams('intel_iommu=off intel_iommu=on', ['intel_iommu=on']).present, [
    'intel_iommu=on',
  ]);
  assert.deepEqual(planParams('intel_iommu=on,off', ['intel_iommu=on']).conflicts, [
    { have: 'intel_iommu=on,off', want: 'intel_iommu=on' },
  ]);
});

test('GuC submission: bit 0 of enable_guc conflicts with GVT-g, HuC-only and auto do not', () => {
  const want = ['i915.enable_guc=0'];
  assert.deepEqual(planParams('i915.enable_guc=3', want).conflicts, [
    { have: 'i915.enable_guc=3', want: 'i915.enable_guc=0' },
  ]);
  assert.deepEqual(planParams('i915.enable_guc=2', want).present, ['i915.enable_guc=2']);
  assert.deepEqual(planParams('i915.enable_guc=-1', want).present, ['i915.enable_guc=-1']);
});

test('SR-IOV parameters: the user’s module_blacklist is extended, a larger max_vfs and the same enable_guc are kept', () => {
  const plan = planParams('quiet module_blacklist=nouveau i915.max_vfs=7 i915.enable_guc=3', [
    'module_blacklist=xe',
    'i915.max_vfs=2',
    'i915.enable_guc=3',
  ]);
  // The kernel keeps the last module_blacklist= only: ours must carry the user's list too.
  assert.deepEqual(plan.add, ['module_blacklist=nouveau,xe']);
  assert.deepEqual(plan.present, ['i915.max_vfs=7', 'i915.enable_guc=3']);
  assert.deepEqual(plan.conflicts, []);
  // GuC off (GVT-g's wish) is still judged as before: 3 is a conflict there.
  assert.deepEqual(planParams('i915.enable_guc=3', ['i915.enable_guc=0']).conflicts, [
    { have: 'i915.enable_guc=3', want: 'i915.enable_guc=0' },
  ]);
});
