import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allIgpuIds, lookupIgpu, SOURCE_ID_COUNT } from '../../src/knowledge/igpu-ids.ts';
import { IGPU_PLATFORMS } from '../../src/knowledge/igpu-platforms.ts';

test('hand-checked device ids map to their platforms', () => {
  const cases: [number, string][] = [
    [0x3e92, 'coffeelake'], // UHD 630, i5-8500T
    [0x3e98, 'coffeelake'], // UHD 630, i9-9900K
    [0x1912, 'skylake'], // HD 530, i7-6700K
    [0x5912, 'kabylake'], // HD 630, i7-7700K
    [0x9bc8, 'cometlake'], // UHD 630, i5-10500
    [0x1622, 'broadwell'], // Iris Pro 6200, i7-5775C
    [0x5a85, 'broxton'], // HD 500, J3455
    [0x3185, 'geminilake'], // UHD 600
    [0x8a52, 'icelake'],
    [0x9a49, 'tigerlake'], // Iris Xe, i5-1135G7
    [0x4c8a, 'rocketlake'],
    [0x4680, 'alderlake-s'],
    [0x46d1, 'alderlake-n'], // N100
    [0xa780, 'raptorlake-s'], // UHD 770, i5-13500
    [0xa7a0, 'raptorlake-p'],
    [0x7d55, 'meteorlake'],
    [0x64a0, 'lunarlake'],
  ];
  for (const [id, platform] of cases) assert.equal(lookupIgpu(id)?.platform, platform, id.toString(16));
  assert.equal(lookupIgpu(0x3ea0)?.variant, 'Whiskey Lake');
  assert.equal(lookupIgpu(0x1234), undefined);
  assert.equal(lookupIgpu(0x56a0), undefined, 'DG2 (Arc) is discrete, not an iGPU');
});

test('no id is listed twice and every id has a known platform', () => {
  assert.equal(allIgpuIds().length, SOURCE_ID_COUNT);
  for (const id of allIgpuIds()) assert.ok(IGPU_PLATFORMS[id.platform], id.platform);
});

test('GVT-g exactly where the kernel supports it; SR-IOV from gen 12 Alder/Raptor Lake', () => {
  const gvt = Object.values(IGPU_PLATFORMS)
    .filter((p) => p.gvt)
    .map((p) => p.id)
    .sort();
  assert.deepEqual(gvt, ['broadwell', 'broxton', 'coffeelake', 'cometlake', 'kabylake', 'skylake']);
  for (const id of ['icelake', 'tigerlake', 'alderlake-n'] as const)
    assert.equal(IGPU_PLATFORMS[id].gvt, false);
  for (const id of ['alderlake-s', 'alderlake-p', 'alderlake-n', 'raptorlake-s', 'raptorlake-p'] as const) {
    assert.equal(IGPU_PLATFORMS[id].sriov, true, id);
  }
  assert.equal(IGPU_PLATFORMS.tigerlake.sriov, false);
  assert.equal(IGPU_PLATFORMS.broadwell.graphicsVer, 8);
  assert.equal(IGPU_PLATFORMS.coffeelake.graphicsVer, 9);
});
